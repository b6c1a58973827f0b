//! The web inspector: a static page under the admin prefix that signs in with the admin token,
//! shows a store's figures and pages through its events with the admin API, and polls the
//! export for new events. Plain HTML, CSS and JavaScript from `src/inspector/`, compiled into
//! the Worker so it has no build step and no asset binding of its own.
//!
//! The page itself holds no data and needs no token to be fetched (a browser cannot put a
//! bearer token on a navigation); every figure and event it shows comes from the admin API,
//! which checks the token on each request. It is served only when `ADMIN_TOKEN` is set, like
//! the rest of the prefix.

/// One file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its text.
    pub body: &'static str,
}

/// What the Worker answers for a path of the inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Serve this file.
    Asset(&'static Asset),
    /// `/_admin` without the slash: redirect here, so the page's relative URLs resolve.
    Redirect(&'static str),
}

/// The page.
pub const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("inspector/index.html"),
};

/// Its script.
pub const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("inspector/app.js"),
};

/// Its style sheet.
pub const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("inspector/style.css"),
};

/// Its icon (without one the browser asks for `/favicon.ico`, which is not the Worker's).
pub const ICON: Asset = Asset {
    content_type: "image/svg+xml",
    body: include_str!("inspector/icon.svg"),
};

/// Only the page's own files may run or style it, and it talks only to its own origin: an
/// event's payload that slipped into the markup could neither run nor load anything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers every inspector response carries besides `Content-Type`. `no-store`: the page
/// changes with the Worker and must never be kept by a shared cache in front of an admin path.
pub const HEADERS: [(&str, &str); 5] = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
];

/// The inspector's answer for `method` and `path`, or `None` when the path is the admin API's.
/// Only `GET` and `HEAD` are the page's; anything else goes on to the API (and its token check).
pub fn page(method: &str, path: &str) -> Option<Page> {
    if method != "GET" && method != "HEAD" {
        return None;
    }
    match path {
        "/_admin" => Some(Page::Redirect("/_admin/")),
        "/_admin/" => Some(Page::Asset(&INDEX)),
        "/_admin/inspector/app.js" => Some(Page::Asset(&SCRIPT)),
        "/_admin/inspector/style.css" => Some(Page::Asset(&STYLE)),
        "/_admin/inspector/icon.svg" => Some(Page::Asset(&ICON)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(page("GET", "/_admin/"), Some(Page::Asset(&INDEX)));
        assert_eq!(page("HEAD", "/_admin/inspector/app.js"), Some(Page::Asset(&SCRIPT)));
        assert_eq!(page("GET", "/_admin/inspector/style.css"), Some(Page::Asset(&STYLE)));
        assert_eq!(page("GET", "/_admin/inspector/icon.svg"), Some(Page::Asset(&ICON)));
        assert_eq!(page("GET", "/_admin"), Some(Page::Redirect("/_admin/")));
        assert_eq!(page("POST", "/_admin/"), None);
        assert_eq!(page("GET", "/_admin/stores/x"), None);
        assert_eq!(page("GET", "/_admin/inspector/"), None);
    }

    #[test]
    fn the_page_runs_no_inline_script() {
        // The policy forbids inline script and style, so the page must not rely on them.
        assert!(!INDEX.body.contains("<script>"));
        assert!(!INDEX.body.contains("style="));
        let handler = |w: &str| w.starts_with("on") && w.contains('=');
        assert!(!INDEX.body.split_whitespace().any(handler), "no inline event handlers");
        assert!(INDEX.body.contains(r#"<script src="inspector/app.js""#));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        // Event data reaches the page only through textContent.
        assert!(!SCRIPT.body.contains("innerHTML"));
        assert!(!SCRIPT.body.contains("insertAdjacentHTML"));
    }
}
