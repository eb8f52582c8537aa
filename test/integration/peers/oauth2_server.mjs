#!/usr/bin/env node
// A real OAuth2 token server for mailroom's tests: the npm package oauth2-mock-server 8.x
// (ESM only; installed by node_peers.sh into $MAILROOM_NODE_DIR, default /tmp/mailroom-node,
// never into the repository), over HTTPS on 127.0.0.1, with a handler in front of it for what
// the package does not do itself.
//
// Usage: node oauth2_server.mjs --cert PEM --key PEM [options]
//   --port N                   default 0: an ephemeral port
//   --lifetime S               access-token lifetime in seconds: the JWT's exp - iat and the
//                              response's expires_in (default 3600)
//   --client ID:SECRET         (repeatable) a registered client; an empty SECRET is a public
//                              client (no secret needed). Checked for the refresh_token and
//                              client_credentials grants, from the body (client_secret_post) or
//                              HTTP Basic (client_secret_basic): unknown or wrong -> 401
//                              invalid_client
//   --refresh-token TOKEN      (repeatable) a valid refresh token; its tokens' sub is --subject.
//                              Unknown or revoked -> 400 invalid_grant
//   --subject USER             sub of tokens from the refresh_token grant (default
//                              user@example.com)
//   --rotate-refresh-tokens    answer refreshes with a new refresh_token (Microsoft's way; it is
//                              valid from then on, the old one stays valid); default: none
//                              (Google's way)
//   --service-account FILE     (repeatable) a Google service-account JSON key file: the
//                              jwt-bearer grant's assertion must be RS256-signed by its key
//                              (verified with node's crypto against the public key), iss =
//                              client_email, aud = this server's token URL (or the file's
//                              token_uri), iat/exp sane (exp - iat <= 3600, not expired, iat not
//                              in the future), scope and sub (the mailbox) present; anything
//                              else -> 400 invalid_grant with an error_description saying why
//   --max-seconds N            exit by itself after N seconds (default 600)
//
// The first line on stdout is `PORT <n>` (flushed). The issuer (every token's iss) is
// https://127.0.0.1:<n>; the token endpoint is ISSUER/token, the key set ISSUER/jwks (RS256,
// one key made at start). Access tokens are RS256 JWTs: iss, iat, nbf, exp, jti, scope, sub
// (refresh_token: --subject; client_credentials: the client_id, plus roles
// ["SMTP.SendAsApp"], Microsoft's app-only role; jwt-bearer: the assertion's sub), client_id
// (the service account's client_id for jwt-bearer), grant (the grant that issued it).
//
// Control, for the test (same server, loopback only, JSON):
//   GET  /__control              the counts: {"requests": {grant: n}, "issued": {grant: n}
//                                (real tokens), "failed": {grant: n} (error answers),
//                                "injected": {grant: n} (a rule's answers), "in_flight",
//                                "max_in_flight" (concurrent token requests), "lifetime",
//                                "pending": [rules], "log": [{"t", "grant", "status"}],
//                                "access_tokens": [...], "assertions": [...],
//                                "refresh_tokens": [...]} (t: seconds since start; the
//                                secrets are there so a test can grep its logs for them)
//   POST /__control/inject       {"kind": K, "count": N, "delay_ms": D, "grant": G}: the next N
//                                token requests (of grant G, or any) get K: "500" (500
//                                server_error), "503", "invalid_grant", "invalid_client" (401),
//                                "malformed" (200, a body that is not JSON), "no_token" (200
//                                without access_token), "delay" (answered normally after D ms),
//                                "reset" (the connection is dropped, no answer). D delays any
//                                kind. Rules are used in order.
//   POST /__control/revoke       {"refresh_token": T}: T is no longer valid
//   POST /__control/add          {"refresh_token": T}: T is valid
//   POST /__control/reset        counts, log and pending rules back to zero
//   POST /__control/lifetime     {"lifetime": S}
// Token requests are counted by grant_type as sent (urn:...:jwt-bearer under "jwt-bearer").
// SIGTERM/SIGINT stop the server, exit status 0. Errors go to stderr.

import { createPublicKey, verify as cryptoVerify, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const BODY_LIMIT = 64 * 1024;

function usage(why) {
  process.stderr.write(`oauth2_server: ${why}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const a = {
    port: 0, lifetime: 3600, clients: new Map(), refreshTokens: new Set(),
    subject: "user@example.com", rotate: false, serviceAccounts: [], maxSeconds: 600,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${flag} needs a value`);
      return argv[++i];
    };
    switch (flag) {
      case "--cert": a.cert = value(); break;
      case "--key": a.key = value(); break;
      case "--port": a.port = Number(value()); break;
      case "--lifetime": a.lifetime = Number(value()); break;
      case "--client": {
        const v = value();
        const colon = v.indexOf(":");
        if (colon <= 0) usage("--client wants ID:SECRET");
        a.clients.set(v.slice(0, colon), v.slice(colon + 1));
        break;
      }
      case "--refresh-token": a.refreshTokens.add(value()); break;
      case "--subject": a.subject = value(); break;
      case "--rotate-refresh-tokens": a.rotate = true; break;
      case "--service-account": {
        const file = value();
        const sa = JSON.parse(readFileSync(file, "utf8"));
        if (!sa.client_email || !sa.private_key) usage(`${file}: not a service-account key`);
        a.serviceAccounts.push({ ...sa, publicKey: createPublicKey(sa.private_key) });
        break;
      }
      case "--max-seconds": a.maxSeconds = Number(value()); break;
      default: usage(`unknown option ${flag}`);
    }
  }
  if (!a.cert || !a.key) usage("--cert and --key are required");
  if (!(a.lifetime > 0)) usage("--lifetime must be a positive number of seconds");
  return a;
}

// The package is ESM only and lives outside the repository: resolve it from MAILROOM_NODE_DIR.
async function loadPackage() {
  const dir = process.env.MAILROOM_NODE_DIR || "/tmp/mailroom-node";
  const require = createRequire(join(dir, "package.json"));
  let entry;
  try {
    entry = require.resolve("oauth2-mock-server");
  } catch {
    process.stderr.write(`oauth2_server: oauth2-mock-server is not installed in ${dir} ` +
      "(test/integration/peers/node_peers.sh installs it)\n");
    process.exit(3);
  }
  return import(pathToFileURL(entry).href);
}

const b64urlJson = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));

function grantName(g) {
  return g === JWT_BEARER ? "jwt-bearer" : String(g ?? "none");
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { OAuth2Issuer, OAuth2Service } = await loadPackage();
  const issuer = new OAuth2Issuer();
  await issuer.keys.generate("RS256");
  const service = new OAuth2Service(issuer);

  const started = Date.now();
  let lifetime = args.lifetime;
  let state;
  const resetState = () => {
    state = {
      requests: {}, issued: {}, failed: {}, injected: {}, in_flight: 0, max_in_flight: 0, pending: [],
      log: [], access_tokens: [], assertions: [], refresh_tokens: [],
    };
  };
  resetState();
  const bump = (table, grant) => { table[grant] = (table[grant] ?? 0) + 1; };
  let tokenUrls = [];

  // Fill in what the package leaves at its defaults: lifetime, subject, a unique jti.
  service.on("beforeTokenSigning", (token, req) => {
    const m = req.mailroom;
    if (!m) return;
    const p = token.payload;
    p.exp = p.iat + lifetime;
    p.jti = randomUUID();
    p.grant = m.grant;
    if (m.sub !== undefined) p.sub = m.sub;
    if (m.scope !== undefined) p.scope = m.scope;
    if (m.clientId !== undefined) p.client_id = m.clientId;
    if (m.roles) p.roles = m.roles;
  });
  service.on("beforeResponse", (response, req) => {
    const m = req.mailroom;
    if (!m || response.statusCode !== 200) return;
    const body = response.body;
    body.expires_in = lifetime;
    delete body.id_token;
    if (m.grant === "refresh_token" && args.rotate && body.refresh_token) {
      args.refreshTokens.add(body.refresh_token);
      state.refresh_tokens.push(body.refresh_token);
    } else {
      delete body.refresh_token;
    }
    if (m.scope === undefined) delete body.scope;
    state.access_tokens.push(body.access_token);
  });

  const send = (res, status, body, raw = false) => {
    const text = raw ? body : JSON.stringify(body);
    res.writeHead(status, {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(text);
  };

  const readBody = (req) => new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });

  // Client authentication: HTTP Basic (form-urlencoded id and secret, RFC 6749 §2.3.1) or the
  // body's client_id/client_secret. Returns an error text, or null and sets m.clientId.
  const checkClient = (req, body, m) => {
    let id = body.client_id, secret = body.client_secret;
    const h = req.headers.authorization;
    if (h && /^basic /i.test(h)) {
      const decoded = Buffer.from(h.slice(6).trim(), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) return "malformed Basic credentials";
      id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
      secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
    }
    if (!id) return "no client_id";
    if (!args.clients.has(id)) return `unknown client ${id}`;
    const want = args.clients.get(id);
    if (want !== "" && secret !== want) return "wrong client secret";
    m.clientId = id;
    return null;
  };

  // The jwt-bearer grant (RFC 7523, Google's service accounts): verify the assertion for real.
  const checkAssertion = (assertion, m) => {
    if (typeof assertion !== "string") return "no assertion";
    const parts = assertion.split(".");
    if (parts.length !== 3) return "the assertion is not a JWS compact serialization";
    let header, claims;
    try {
      header = b64urlJson(parts[0]);
      claims = b64urlJson(parts[1]);
    } catch {
      return "the assertion's header or claims are not base64url JSON";
    }
    if (header.alg !== "RS256") return `assertion alg ${header.alg}, want RS256`;
    const sa = args.serviceAccounts.find((s) => s.client_email === claims.iss);
    if (!sa) return `unknown service account ${claims.iss}`;
    if (header.kid !== undefined && sa.private_key_id && header.kid !== sa.private_key_id)
      return "the assertion's kid is not the service account's private_key_id";
    const ok = cryptoVerify("sha256", Buffer.from(`${parts[0]}.${parts[1]}`), sa.publicKey,
      Buffer.from(parts[2], "base64url"));
    if (!ok) return "invalid JWT signature";
    const auds = [...tokenUrls, sa.token_uri].filter(Boolean);
    if (!auds.includes(claims.aud)) return `aud ${claims.aud} is not the token URL`;
    const now = Math.floor(Date.now() / 1000);
    if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp))
      return "iat and exp must be integers";
    if (claims.exp <= now) return "the assertion has expired";
    if (claims.iat > now + 60) return "iat is in the future";
    if (claims.exp - claims.iat > 3600) return "exp - iat is more than an hour";
    if (typeof claims.scope !== "string" || !claims.scope) return "no scope";
    if (typeof claims.sub !== "string" || !claims.sub) return "no sub (the mailbox)";
    m.sub = claims.sub;
    m.scope = claims.scope;
    m.clientId = sa.client_id;
    return null;
  };

  const tokenRequest = async (req, res) => {
    const raw = await readBody(req);
    const type = (req.headers["content-type"] || "").split(";")[0].trim().toLowerCase();
    let body;
    try {
      body = type === "application/json"
        ? JSON.parse(raw)
        : Object.fromEntries(new URLSearchParams(raw));
    } catch {
      body = {};
    }
    const grant = grantName(body.grant_type);
    bump(state.requests, grant);
    const t = (Date.now() - started) / 1000;
    // A request ends issued (a real token), failed (an error answer) or injected (a rule's
    // answer, whatever its status).
    const finish = (status, injected = null) => {
      state.log.push(injected ? { t, grant, status, injected } : { t, grant, status });
      bump(injected ? state.injected : status === 200 ? state.issued : state.failed, grant);
    };
    if (grant === "jwt-bearer" && typeof body.assertion === "string")
      state.assertions.push(body.assertion);

    // Injected faults first: the rule's delay, then its answer.
    const i = state.pending.findIndex((r) => r.count > 0 && (!r.grant || r.grant === grant));
    let rule = null;
    if (i >= 0) {
      rule = { ...state.pending[i] };
      if (--state.pending[i].count === 0) state.pending.splice(i, 1);
    }
    if (rule?.delay_ms) await new Promise((r) => setTimeout(r, rule.delay_ms));
    switch (rule?.kind) {
      case "500":
        finish(500, rule.kind);
        return send(res, 500, { error: "server_error", error_description: "injected 500" });
      case "503":
        finish(503, rule.kind);
        return send(res, 503, { error: "temporarily_unavailable",
          error_description: "injected 503" });
      case "invalid_grant":
        finish(400, rule.kind);
        return send(res, 400, { error: "invalid_grant",
          error_description: "Token has been expired or revoked." });
      case "invalid_client":
        finish(401, rule.kind);
        return send(res, 401, { error: "invalid_client",
          error_description: "The OAuth client was not found." });
      case "malformed":
        finish(200, rule.kind);
        return send(res, 200, '{"access_token": "x", "expires_in": 36', true);
      case "no_token":
        finish(200, rule.kind);
        return send(res, 200, { token_type: "Bearer", expires_in: lifetime });
      case "reset":
        finish(0, rule.kind);
        req.socket.destroy();
        return;
      default:
        break;
    }

    const m = { grant };
    let why = null, status = 400, error = "invalid_grant";
    if (grant === "refresh_token" || grant === "client_credentials") {
      why = checkClient(req, body, m);
      if (why) {
        status = 401;
        error = "invalid_client";
      } else if (grant === "refresh_token") {
        if (!args.refreshTokens.has(body.refresh_token))
          why = "unknown or revoked refresh token";
        m.sub = args.subject;
        m.scope = body.scope ?? "https://mail.google.com/";
      } else {
        m.sub = m.clientId;
        m.roles = ["SMTP.SendAsApp"];
      }
    } else if (grant === "jwt-bearer") {
      why = checkAssertion(body.assertion, m);
      // The package knows no jwt-bearer grant: it issues the token as for client_credentials,
      // and beforeTokenSigning puts in the assertion's sub and scope.
      body.grant_type = "client_credentials";
      delete body.aud;
    } else {
      why = `unsupported grant_type ${body.grant_type}`;
      error = "unsupported_grant_type";
    }
    if (why) {
      finish(status);
      return send(res, status, { error, error_description: why });
    }
    if (body.scope !== undefined && m.scope === undefined) m.scope = body.scope;
    // Hand the request to the package, its body already read (body-parser sees a finished
    // request and keeps req.body).
    req.mailroom = m;
    req.body = body;
    const end = res.end.bind(res);
    res.end = (...a) => {
      finish(res.statusCode);
      return end(...a);
    };
    service.requestHandler(req, res);
  };

  const control = async (req, res, path) => {
    if (req.method === "GET" && path === "/__control")
      return send(res, 200, { ...state, lifetime, uptime: (Date.now() - started) / 1000 });
    if (req.method !== "POST") return send(res, 405, { error: "GET or POST" });
    let body;
    try {
      const raw = await readBody(req);
      body = raw ? JSON.parse(raw) : {};
    } catch (e) {
      return send(res, 400, { error: `bad JSON: ${e.message}` });
    }
    switch (path) {
      case "/__control/inject": {
        const kinds = ["500", "503", "invalid_grant", "invalid_client", "malformed", "no_token",
          "delay", "reset"];
        if (!kinds.includes(String(body.kind))) return send(res, 400, { error: "bad kind" });
        state.pending.push({ kind: String(body.kind), count: Number(body.count ?? 1),
          delay_ms: Number(body.delay_ms ?? 0), grant: body.grant ?? null });
        return send(res, 200, { pending: state.pending });
      }
      case "/__control/revoke":
        args.refreshTokens.delete(body.refresh_token);
        return send(res, 200, {});
      case "/__control/add":
        args.refreshTokens.add(body.refresh_token);
        return send(res, 200, {});
      case "/__control/reset":
        resetState();
        return send(res, 200, {});
      case "/__control/lifetime":
        if (!(Number(body.lifetime) > 0)) return send(res, 400, { error: "bad lifetime" });
        lifetime = Number(body.lifetime);
        return send(res, 200, {});
      default:
        return send(res, 404, { error: "no such control" });
    }
  };

  const server = createServer({ cert: readFileSync(args.cert), key: readFileSync(args.key) },
    (req, res) => {
      const path = new URL(req.url, "https://127.0.0.1").pathname;
      const handle = async () => {
        if (path === "/__control" || path.startsWith("/__control/"))
          return control(req, res, path);
        if (req.method === "POST" && path === "/token") {
          state.in_flight++;
          state.max_in_flight = Math.max(state.max_in_flight, state.in_flight);
          res.on("close", () => state.in_flight--);
          return tokenRequest(req, res);
        }
        return service.requestHandler(req, res); // /jwks, /.well-known/..., the rest
      };
      handle().catch((e) => {
        process.stderr.write(`oauth2_server: ${req.method} ${path}: ${e.stack || e}\n`);
        if (!res.headersSent) send(res, 500, { error: "server_error" });
        else res.destroy();
      });
    });
  server.on("tlsClientError", () => {}); // a client that refused our certificate: its business
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(args.port, "127.0.0.1", resolve);
  });
  const port = server.address().port;
  issuer.url = `https://127.0.0.1:${port}`;
  tokenUrls = [`https://127.0.0.1:${port}/token`, `https://localhost:${port}/token`];
  process.stdout.write(`PORT ${port}\n`);

  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  setTimeout(() => {
    process.stderr.write(`oauth2_server: --max-seconds ${args.maxSeconds} reached, exiting\n`);
    stop();
  }, args.maxSeconds * 1000).unref();
}

main().catch((e) => {
  process.stderr.write(`oauth2_server: ${e.stack || e}\n`);
  process.exit(1);
});
