// Loaded into wrangler 4.86 (NODE_OPTIONS=--require …) when the worker reaches Postgres through a
// local Hyperdrive binding. Miniflare's local Hyperdrive proxy pipes each Worker socket to a
// database socket without error listeners (cloudflare/workers-sdk#15768): the first ECONNRESET
// from a Worker socket closed abruptly, or an ECONNREFUSED while the database restarts, kills
// the whole `wrangler dev` process; and Nagle's algorithm stalls each statement ~40 ms. Here each
// socket of a server and of an outgoing connection gets an error listener and no delay, and a
// database socket opened while a proxy connection is being accepted is paired with it: when one
// side fails or closes, the other is ended, so the Worker sees the close and reconnects instead
// of waiting on a read forever. Not needed by wrangler versions that connect workerd to the
// database directly.
const net = require('node:net')

const partner = new WeakMap()
let accepting = null

const guard = (socket) => {
  if (typeof socket.setNoDelay === 'function') socket.setNoDelay(true)
  const endPartner = () => {
    const other = partner.get(socket)
    if (other && !other.destroyed) other.destroy()
  }
  socket.on('error', endPartner)
  socket.on('close', endPartner)
}

const createServer = net.createServer
net.createServer = function (...args) {
  const at = args.findIndex((a) => typeof a === 'function')
  if (at >= 0) {
    const listener = args[at]
    args[at] = function (socket, ...rest) {
      guard(socket)
      accepting = socket
      try {
        return listener.call(this, socket, ...rest)
      } finally {
        accepting = null
      }
    }
  }
  return createServer.apply(this, args)
}

const connect = net.connect
net.connect = net.createConnection = function (...args) {
  const socket = connect.apply(this, args)
  if (accepting) {
    partner.set(socket, accepting)
    partner.set(accepting, socket)
  }
  guard(socket)
  return socket
}
