// Load benchmark peer for bench/run_load.py: Nodemailer's pooled SMTP transport.
//
// One transport with pool: true, maxConnections: CONNECTIONS, maxMessages: Infinity, so every
// connection stays up and carries message after message (EHLO once per connection; Nodemailer
// pipelines MAIL, RCPT and DATA when the server offers PIPELINING). COUNT messages in all, each
// the same pre-built bytes (the file as it is, CRLF line ends expected) given as `raw` with an
// explicit envelope, so no MIME composition is measured. OUTSTANDING sendMail() calls (default
// 2 x CONNECTIONS) are kept in flight, so the pool always has a message waiting when a
// connection frees up, without queueing all COUNT at once.
//
// Prints one line:
//     nodemailer-pool load msgs=N failed=F seconds=S
// seconds: from the transport's creation to the last message's reply. Exit status 0 only if
// every message was accepted.
//
// Usage: node nodemailer_pool.cjs --port PORT --file FILE --count N --connections K
//            [--host 127.0.0.1] [--outstanding M] [--module PATH-TO-nodemailer]
//            [--from ADDR] [--to ADDR]
// --module defaults to $NODEMAILER, else plain require('nodemailer') (NODE_PATH applies).
'use strict';

const fs = require('fs');

function parseArgs(argv) {
    const opts = {
        host: '127.0.0.1', port: 0, file: '', count: 0, connections: 0, outstanding: 0,
        module: process.env.NODEMAILER || 'nodemailer',
        from: 'sender@example.com', to: 'rcpt@example.net',
    };
    const numeric = new Set(['port', 'count', 'connections', 'outstanding']);
    for (let i = 0; i < argv.length; i += 2) {
        const flag = argv[i], value = argv[i + 1];
        const name = flag.startsWith('--') ? flag.slice(2) : '';
        if (!(name in opts) || value === undefined) {
            throw new Error(`unknown option or missing value: ${flag}`);
        }
        if (numeric.has(name)) {
            const n = Number(value);
            if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive number`);
            opts[name] = n;
        } else {
            opts[name] = value;
        }
    }
    if (!opts.port || !opts.file || !opts.count || !opts.connections) {
        throw new Error('usage: nodemailer_pool.cjs --port PORT --file FILE --count N --connections K');
    }
    if (!opts.outstanding) opts.outstanding = 2 * opts.connections;
    return opts;
}

let opts;
try {
    opts = parseArgs(process.argv.slice(2));
} catch (e) {
    console.error(`nodemailer_pool: ${e.message}`);
    process.exit(2);
}
const nodemailer = require(opts.module);
const raw = fs.readFileSync(opts.file);
const envelope = { from: opts.from, to: [opts.to] };

const t0 = process.hrtime.bigint();
const transport = nodemailer.createTransport({
    host: opts.host,
    port: opts.port,
    secure: false,
    ignoreTLS: true,
    name: 'client.example',
    pool: true,
    maxConnections: opts.connections,
    maxMessages: Infinity,
    connectionTimeout: 60000,
    socketTimeout: 60000,
    logger: false,
    debug: false,
});

let started = 0, sent = 0, failed = 0;

function finished() {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`nodemailer-pool load msgs=${sent} failed=${failed} seconds=${seconds.toFixed(3)}`);
    transport.close();
    process.exitCode = sent === opts.count ? 0 : 1;
}

function sendNext() {
    if (started >= opts.count) return;
    started++;
    transport.sendMail({ envelope, raw }).then(
        () => { sent++; },
        (err) => {
            failed++;
            if (failed <= 5) console.error(`nodemailer_pool: ${err && err.message ? err.message : err}`);
        },
    ).then(() => {
        if (sent + failed === opts.count) finished();
        else sendNext();
    });
}

for (let i = 0; i < Math.min(opts.outstanding, opts.count); i++) sendNext();
