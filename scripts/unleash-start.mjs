// Start an installed unleash-server; everything else comes from the environment
// (DATABASE_URL, HTTP_HOST, HTTP_PORT, INIT_ADMIN_API_TOKENS, INIT_CLIENT_API_TOKENS, ...).
//
//   node scripts/unleash-start.mjs <install dir>
//
// Prints one JSON line when it listens; SIGTERM/SIGINT stop it cleanly.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node unleash-start.mjs <unleash-server install dir>');
  process.exit(2);
}
const impl = join(dir, 'node_modules', 'unleash-server', 'dist', 'lib', 'server-impl.js');
const { start } = await import(pathToFileURL(impl).href);
const t0 = Date.now();
const unleash = await start({});
console.log(JSON.stringify({ event: 'unleash_started', ms: Date.now() - t0 }));
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    try {
      await unleash.stop();
    } finally {
      process.exit(0);
    }
  });
}
