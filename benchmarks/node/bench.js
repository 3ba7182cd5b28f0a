// nodemailer's SMTP pool as a benchmark peer: prints one JSON object (the last line).
//
//   node bench.js --port P --message FILE --count N [--warmup W] [--concurrency C]
//                 [--max-seconds S] [--recipients R]
//
// With R, every message goes to R envelope recipients (sink0@example.net ...), as
// worker.py's clients do; without it, to the one RECIPIENT.
//
// C concurrent senders share one pool of C connections (nodemailer defaults otherwise,
// maxMessages 100 as in smtpx.Pool).  W untimed messages first, then N timed ones; the
// CPU time is process.cpuUsage() (user + system) over the timed part only.
'use strict';

const fs = require('node:fs');
const nodemailer = require('nodemailer');

const SENDER = 'bench@example.com';
const RECIPIENT = 'sink@example.net';

function parseArgs(argv) {
    const args = { count: 1000, warmup: 50, concurrency: 8, 'max-seconds': 120 };
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i].replace(/^--/, '');
        args[key] = key === 'message' ? argv[i + 1] : Number(argv[i + 1]);
    }
    return args;
}

async function drive(transporter, message, recipients, count, feeders, deadline) {
    let next = 0;
    let sent = 0;
    async function feeder() {
        while (next < count) {
            next += 1;
            if (performance.now() > deadline) return;
            const info = await transporter.sendMail({
                envelope: { from: SENDER, to: recipients },
                raw: message,
            });
            if (info.accepted.length !== recipients.length) throw new Error(`not accepted: ${JSON.stringify(info)}`);
            sent += 1;
        }
    }
    await Promise.all(Array.from({ length: feeders }, feeder));
    return sent;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const message = fs.readFileSync(args.message);
    const recipients = args.recipients
        ? Array.from({ length: args.recipients }, (_, i) => `sink${i}@example.net`)
        : [RECIPIENT];
    const maxMs = args['max-seconds'] * 1000;
    // a hard stop: nothing here may run much longer than asked
    setTimeout(() => {
        console.log(JSON.stringify({ error: 'watchdog: exceeded max-seconds' }));
        process.exit(1);
    }, 2 * maxMs + 30000).unref();
    const transporter = nodemailer.createTransport({
        host: '127.0.0.1',
        port: args.port,
        secure: false,
        ignoreTLS: true,
        name: 'bench.local',
        pool: true,
        maxConnections: args.concurrency,
        logger: false,
        socketTimeout: 30000,
    });
    try {
        const warmDeadline = performance.now() + maxMs;
        await drive(transporter, message, recipients, args.warmup, args.concurrency, warmDeadline);
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const sent = await drive(
            transporter, message, recipients, args.count, args.concurrency, t0 + maxMs);
        const seconds = (performance.now() - t0) / 1000;
        const cpu = process.cpuUsage(cpu0);
        console.log(JSON.stringify({
            client: 'nodemailer-pool',
            messages: sent,
            seconds,
            cpu_seconds: (cpu.user + cpu.system) / 1e6,
            feeders: args.concurrency,
            warmup: args.warmup,
            recipients: recipients.length,
            nodemailer: require('nodemailer/package.json').version,
        }));
    } finally {
        transporter.close();
    }
}

main().catch((err) => {
    console.log(JSON.stringify({ error: `${err.name}: ${err.message}` }));
    process.exit(1);
});
