// A real S3-compatible server for the tests (s3rver, npm), in its own process so that a test can
// kill -9 it mid-upload, behind a small recording proxy on 127.0.0.1:
//  - every request is appended to LOG as one JSON line (method, path, query, the Object Lock and
//    checksum headers it carried, the status answered): s3rver ignores Object Lock, so tests assert
//    the headers the server received (README, Offsite);
//  - FAULTS (a JSON file, re-read per request) can make it answer `slowDown: N` requests with
//    503 SlowDown, and answer GET ?object-lock for the buckets in `lockEnabled` with an enabled
//    configuration (s3rver has no Object Lock; the bucket's other requests still go to s3rver), and
//    refuse every DELETE in the buckets in `refuseDelete` with 403 AccessDenied (a lock in force).
// Usage: node s3-server.mjs DIR LOG FAULTS  → prints {"port":N} on stdout once listening.
import http from 'node:http';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import S3rver from 's3rver';

const [dir, logFile, faultsFile] = process.argv.slice(2);
const backend = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
const { port: backendPort } = await backend.run();

let faultsSeen = -1;
let slowDownLeft = 0;
function faults() {
  let f = {};
  try {
    const st = statSync(faultsFile);
    f = JSON.parse(readFileSync(faultsFile, 'utf8'));
    if (st.mtimeMs !== faultsSeen) {
      faultsSeen = st.mtimeMs;
      slowDownLeft = f.slowDown ?? 0;
    }
  } catch {
    // no faults file: no faults
  }
  return f;
}

const RECORDED =
  /^(x-amz-object-lock-|x-amz-checksum-|x-amz-sdk-checksum|content-md5$|content-length$|x-amz-bypass-governance|x-amz-copy-source$)/;

const proxy = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => RECORDED.test(k)));
  const record = (status) =>
    appendFileSync(
      logFile,
      `${JSON.stringify({ method: req.method, path: decodeURIComponent(url.pathname), query: url.search, headers, status })}\n`,
    );
  const f = faults();
  if (slowDownLeft > 0) {
    slowDownLeft--;
    req.resume();
    record(503);
    res.writeHead(503, { 'content-type': 'application/xml' });
    res.end(
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
    );
    return;
  }
  const bucket = url.pathname.split('/')[1];
  // An Object Lock in force, as a real bucket answers a delete of a locked object version.
  if (req.method === 'DELETE' && (f.refuseDelete ?? []).includes(bucket)) {
    req.resume();
    record(403);
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end(
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied because object protected by object lock.</Message></Error>',
    );
    return;
  }
  if (req.method === 'GET' && url.searchParams.has('object-lock')) {
    req.resume();
    const enabled = (f.lockEnabled ?? []).includes(bucket);
    record(enabled ? 200 : 404);
    if (enabled) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>',
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ObjectLockConfigurationNotFoundError</Code><Message>Object Lock configuration does not exist for this bucket</Message></Error>',
      );
    }
    return;
  }
  const up = http.request({ host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
    record(r.statusCode);
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
});
proxy.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: proxy.address().port })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
