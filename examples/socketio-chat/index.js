// A socket.io chat on three servers (plain node:http + socket.io, rooms in memory)
// behind a Fastify app with the Affinity plugin.
//
// Why socket.io needs stickiness: a connection starts with an engine.io handshake
// over HTTP long-polling (GET → the server creates session "sid" in its memory),
// continues with more polling requests (POST to send, GET to receive) carrying that
// sid, and then upgrades to a WebSocket, again carrying the sid. Every one of those
// requests must reach the server that holds the session; any other server answers
// HTTP 400 {"code":1,"message":"Session ID unknown"} and the client fails to connect.
// The walk-through shows that failure with roundRobin(), then the same clients
// working with stickyCookie().
//
//   node examples/socketio-chat/index.js           # runs the walk-through, exits
//   node examples/socketio-chat/index.js --serve   # serves a chat page: open it in two browsers
//
// Build the workspace first (`npm run build`): `@affinity/*` resolves to packages/*/dist.
import http from 'node:http'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import affinity from '@affinity/fastify'
import { consistentHash, roundRobin, stickyCookie } from '@affinity/core'
import { Server } from 'socket.io'
import { io as connect } from 'socket.io-client'

const SECRET = process.env.AFFINITY_SECRET ?? 'example-only-secret-use-32-random-characters'

/**
 * One chat server. Rooms live in this server's memory (socket.io's default
 * adapter): a broadcast reaches the sockets connected to this server only.
 * The arrays record what the walk-through reports.
 */
async function startChatServer (name) {
  const httpServer = http.createServer()
  const io = new Server(httpServer, { serveClient: false })
  const requests = [] // every engine.io request that reached this server
  const sessions = [] // engine.io handshakes accepted here, and their upgrades
  const refused = [] // requests engine.io refused (e.g. 400 "Session ID unknown")

  const record = (req, kind) => {
    const q = new URL(req.url, 'http://x').searchParams
    requests.push({ kind, method: req.method, transport: q.get('transport'), sid: q.get('sid'), affinityCookie: /(?:^|;\s*)affinity=/.test(req.headers.cookie ?? '') })
  }
  httpServer.on('request', (req) => record(req, 'http'))
  httpServer.on('upgrade', (req) => record(req, 'upgrade'))
  io.engine.on('connection', (socket) => {
    const session = { sid: socket.id, transport: socket.transport.name, upgradedTo: null }
    sessions.push(session)
    socket.on('upgrade', (transport) => { session.upgradedTo = transport.name })
  })
  io.engine.on('connection_error', (err) => {
    const q = new URL(err.req.url, 'http://x').searchParams
    refused.push({ server: name, transport: q.get('transport'), sid: q.get('sid'), status: 400, code: err.code, message: err.message })
  })

  // The chat itself.
  io.on('connection', (socket) => {
    const room = String(socket.handshake.query.room ?? 'lobby')
    const user = String(socket.handshake.auth.user ?? 'anonymous')
    void socket.join(room)
    socket.on('say', (text) => io.to(room).emit('message', { from: user, text: String(text), room, server: name }))
  })

  await new Promise(resolve => httpServer.listen(0, '127.0.0.1', resolve))
  return { name, url: `http://127.0.0.1:${httpServer.address().port}`, io, requests, sessions, refused }
}

/** A browser page for --serve: open /?room=lobby&user=ann in two browsers. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>Affinity socket.io chat</title>
<ul id="log"></ul><form><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script src="/socket.io.js"></script>
<script>
  const params = new URLSearchParams(location.search)
  const room = params.get('room') || 'lobby'
  const user = params.get('user') || 'guest-' + Math.random().toString(36).slice(2, 6)
  const show = (t) => { const li = document.createElement('li'); li.textContent = t; document.getElementById('log').append(li) }
  // Same origin, so no options are needed for the cookie: the browser keeps the
  // balancer's Set-Cookie from the first polling response and sends it on every
  // later polling request and on the WebSocket upgrade. (Cross-origin, pass
  // withCredentials: true and allow credentials in CORS.)
  const socket = io({ query: { room }, auth: { user } })
  socket.on('connect', () => {
    show('connected as ' + user + ' in ' + room + ' over ' + socket.io.engine.transport.name)
    socket.io.engine.once('upgrade', (t) => show('upgraded to ' + t.name))
  })
  socket.on('message', (m) => show('[' + m.server + '] ' + m.from + ': ' + m.text))
  document.querySelector('form').onsubmit = (e) => { e.preventDefault(); socket.emit('say', text.value); text.value = '' }
</script>`

/**
 * The front: a Fastify app with Affinity under /socket.io (socket.io's default
 * path), WebSocket upgrades included. `strategy` is what the walk-through varies.
 */
export async function start ({ strategy, port = 0 } = {}) {
  const servers = await Promise.all(['S1', 'S2', 'S3'].map(startChatServer))
  strategy ??= stickyCookie({
    secret: SECRET,
    // Where a user without a cookie goes first. socket.io's default adapter keeps
    // rooms in each server's memory, so place new users by room (the `room` query
    // parameter the client sends): a room's members meet on one server. The cookie
    // then keeps each user there. With a shared adapter (@socket.io/redis-adapter…)
    // rooms span servers and the default `assign` (leastConnections) is the choice.
    assign: consistentHash({ key: { query: 'room' } }),
  })
  const app = Fastify({ logger: false })
  // For --serve: the page and the socket.io browser client, served by the front itself
  // (so the first request that reaches the balancer is the handshake, with its room).
  app.get('/', (_req, reply) => reply.type('text/html').send(PAGE))
  const clientJs = createRequire(import.meta.url).resolve('socket.io-client/dist/socket.io.js')
  app.get('/socket.io.js', async (_req, reply) => reply.type('text/javascript').send(await readFile(clientJs)))

  await app.register(affinity, {
    prefix: '/socket.io',
    rewritePrefix: '/socket.io', // the upstreams serve socket.io at the same path
    websocket: true, // upgrades go to the upstream the same strategy picks
    upstreams: servers.map(s => ({ id: s.name, url: s.url })),
    strategy,
  })
  await app.listen({ port, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${app.server.address().port}`
  return {
    url,
    servers,
    async close () {
      // Chat servers first: engine.io ends every session, answering pending long-polls
      // (a client that gave up leaves its long-poll open until the server's next ping,
      // 25 s by default, and the front would wait for that proxied request).
      const closing = servers.map(s => s.io.close()) // closes each http server too
      await app.close() // ends proxied WebSocket tunnels, closes the balancer
      await Promise.all(closing)
    },
  }
}

/**
 * A chat client in Node. `withCredentials: true` gives socket.io-client (engine.io-client
 * ≥ 6.5) a cookie jar in Node: it stores the balancer's Set-Cookie from the handshake
 * and sends it on the following polling requests and on the WebSocket upgrade, as a
 * browser does. (Older clients: make one HTTP request first and pass the cookie with
 * `extraHeaders: { cookie }`.) Resolves once connected AND upgraded to WebSocket.
 */
function join (url, { user, room }, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const socket = connect(url, {
      forceNew: true, // one connection per client (no Manager sharing between them)
      reconnection: false, // fail once, visibly, instead of retrying
      withCredentials: true,
      query: { room },
      auth: { user },
      timeout: timeoutMs,
    })
    const client = { user, room, socket, messages: [], transports: [], sid: undefined }
    const timer = setTimeout(() => { socket.close(); reject(new Error(`${user}: not connected and upgraded within ${timeoutMs} ms`)) }, timeoutMs)
    const done = () => {
      if (socket.connected && client.transports.includes('websocket')) { clearTimeout(timer); resolve(client) }
    }
    socket.io.on('open', () => {
      const engine = socket.io.engine
      client.sid = engine.id
      client.transports.push(engine.transport.name) // 'polling'
      engine.once('upgrade', (transport) => { client.transports.push(transport.name); done() })
    })
    socket.on('connect', done)
    socket.on('message', (m) => client.messages.push(m))
    socket.on('connect_error', (err) => {
      clearTimeout(timer)
      socket.close()
      // A polling request answered 400: err.description is the HTTP status.
      reject(Object.assign(new Error(`${user}: ${err.message} (HTTP ${err.description})`), { sid: client.sid, status: err.description }))
    })
  })
}

/** Polls `cond` every 10 ms until it holds or `ms` have passed. */
async function waitFor (cond, ms) {
  const deadline = Date.now() + ms
  while (!cond() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
}

const PEOPLE = [
  { user: 'alice', room: 'lobby' },
  { user: 'bob', room: 'lobby' },
  { user: 'carol', room: 'dev' },
  { user: 'dave', room: 'dev' },
]

/** Round robin: alice's handshake lands on one server, her next requests on the others. */
async function roundRobinAttempt (log) {
  const env = await start({ strategy: roundRobin() })
  try {
    await join(env.url, PEOPLE[0])
    log('roundRobin: alice connected (unexpected)')
    return { failed: false }
  } catch (err) {
    const handshake = env.servers.find(s => s.sessions.some(x => x.sid === err.sid))
    const refused = env.servers.flatMap(s => s.refused.filter(r => r.sid === err.sid))
    log(`roundRobin: alice's handshake (polling) was answered by ${handshake?.name} with sid ${err.sid}`)
    for (const r of refused) log(`  then ${r.server} got a ${r.transport} request for that sid → HTTP ${r.status} ${JSON.stringify({ code: r.code, message: r.message })}`)
    log(`  client: connect_error ${err.message}`)
    return { failed: true, error: err.message, status: err.status, handshakeServer: handshake?.name, refused }
  } finally {
    await env.close()
  }
}

/** stickyCookie: the same clients connect, upgrade on their own server and chat in rooms. */
async function stickyAttempt (log) {
  const env = await start()
  const clients = []
  try {
    for (const p of PEOPLE) clients.push(await join(env.url, p))
    // The client sees its upgrade a moment before the server does: wait for both.
    const upgradedOnServer = (c) => env.servers.some(s => s.sessions.some(x => x.sid === c.sid && x.upgradedTo === 'websocket'))
    await waitFor(() => clients.every(upgradedOnServer), 2000)

    // Where each client's requests went, as the servers saw them.
    const report = clients.map(c => {
      const handshake = env.servers.find(s => s.sessions.some(x => x.sid === c.sid))
      const session = handshake.sessions.find(x => x.sid === c.sid)
      const sawSid = env.servers.filter(s => s.requests.some(r => r.sid === c.sid))
      const mine = sawSid.flatMap(s => s.requests.filter(r => r.sid === c.sid))
      const upgrade = mine.find(r => r.kind === 'upgrade')
      return {
        user: c.user,
        room: c.room,
        sid: c.sid,
        transports: c.transports,
        handshakeServer: handshake.name,
        handshakeTransport: session.transport,
        upgradedOn: session.upgradedTo === 'websocket' ? handshake.name : null,
        servers: [...new Set([handshake.name, ...sawSid.map(s => s.name)])],
        requests: mine.length + 1, // + the handshake, which carries no sid yet
        // In arrival order; the handshake comes first and carries no sid yet.
        sequence: [`GET ${session.transport} (handshake)`, ...mine.map(r => `${r.method} ${r.transport}${r.kind === 'upgrade' ? ' (upgrade)' : ''}`)],
        upgradeCarriedCookie: upgrade?.affinityCookie === true,
      }
    })
    for (const r of report) {
      log(`stickyCookie: ${r.user.padEnd(5)} (${r.room}) handshake on ${r.handshakeServer} over ${r.handshakeTransport}, upgraded to websocket on ${r.upgradedOn}; all ${r.requests} requests on ${r.servers.join(', ')}; upgrade carried the cookie: ${r.upgradeCarriedCookie}`)
      log(`              ${r.sequence.join(' → ')}`)
    }

    // Everyone says hello; each room hears its own members only.
    for (const c of clients) c.socket.emit('say', `hello from ${c.user}`)
    const expected = (c) => clients.filter(o => o.room === c.room).length
    await waitFor(() => clients.every(c => c.messages.length >= expected(c)), 5000)
    await new Promise(resolve => setTimeout(resolve, 50)) // let any stray cross-room message arrive
    const rooms = {}
    for (const c of clients) {
      rooms[c.room] ??= { server: report.find(r => r.user === c.user).handshakeServer, received: {} }
      rooms[c.room].received[c.user] = c.messages.map(m => `${m.from}: ${m.text}`)
    }
    for (const [room, r] of Object.entries(rooms)) {
      for (const [user, msgs] of Object.entries(r.received)) log(`  room ${room} (on ${r.server}): ${user} received ${JSON.stringify(msgs)}`)
    }
    return { clients: report, rooms }
  } finally {
    for (const c of clients) c.socket.disconnect()
    await env.close()
  }
}

export async function run ({ log = console.log } = {}) {
  const roundRobinResult = await roundRobinAttempt(log)
  const sticky = await stickyAttempt(log)
  return { roundRobin: roundRobinResult, sticky }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--serve')) {
    const env = await start({ port: Number(process.env.PORT ?? 0) })
    console.log(`Chat on ${env.url}/?room=lobby&user=ann  (open it in two browsers)  Ctrl-C stops it`)
    process.once('SIGINT', () => { void env.close() })
  } else {
    await run()
  }
}
