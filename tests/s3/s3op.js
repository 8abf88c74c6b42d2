// A small S3 client for the tests that is not Strata: requests signed with the
// AWS SDK's SigV4 signer (@smithy/signature-v4), so stores that check
// signatures (Ceph RGW) can be filled and inspected. Keys: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY (default S3RVER / S3RVER).
//
//   node s3op.js ENDPOINT mb BUCKET
//   node s3op.js ENDPOINT put BUCKET KEY FILE
//   node s3op.js ENDPOINT put-many BUCKET LISTFILE     lines "KEY<TAB>FILE", 32 at a time
//   node s3op.js ENDPOINT get BUCKET KEY FILE          exit 3 when the object is absent
//   node s3op.js ENDPOINT get-many BUCKET LISTFILE     lines "KEY<TAB>FILE"; absent objects leave no file
//   node s3op.js ENDPOINT head BUCKET KEY              the response headers as JSON
//   node s3op.js ENDPOINT rm BUCKET KEY
//   node s3op.js ENDPOINT presign-many BUCKET LISTFILE METHOD   lines "KEY": a URL per line, valid 1 hour
// Every request has a 60 s deadline.
const fs = require('fs');
const http = require('http');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

const [endpoint, op, bucket, key, file] = process.argv.slice(2);
const url = new URL(endpoint);
const signer = new SignatureV4({
  service: 's3',
  region: process.env.AWS_REGION || 'us-east-1',
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'S3RVER',
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'S3RVER',
  },
  sha256: Sha256,
  uriEscapePath: false,
  applyChecksum: false,
});

function encodeKey(k) {
  return k.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
}

async function request(method, path, body) {
  const headers = { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
  if (body !== undefined) headers['content-length'] = String(body.length);
  const signed = await signer.sign({ method, protocol: 'http:', hostname: url.hostname,
    port: Number(url.port), path, query: {}, headers });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers: signed.headers,
      timeout: 60000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function check(r, what) {
  if (r.status >= 300) {
    console.error(`${what}: HTTP ${r.status} ${r.body.toString().slice(0, 500)}`);
    process.exit(1);
  }
}

async function put(k, f) {
  check(await request('PUT', `/${bucket}/${encodeKey(k)}`, fs.readFileSync(f)), `PUT ${k}`);
}

async function main() {
  switch (op) {
    case 'mb': {
      const r = await request('PUT', `/${bucket}`, Buffer.alloc(0));
      if (r.status !== 409) check(r, `PUT bucket ${bucket}`);
      break;
    }
    case 'put': await put(key, file); break;
    case 'put-many': {
      const items = fs.readFileSync(key, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
      let next = 0;
      const worker = async () => { while (next < items.length) { const [k, f] = items[next++]; await put(k, f); } };
      await Promise.all(Array.from({ length: 32 }, worker));
      break;
    }
    case 'get': {
      const r = await request('GET', `/${bucket}/${encodeKey(key)}`);
      if (r.status === 404) process.exit(3);
      check(r, `GET ${key}`);
      fs.writeFileSync(file, r.body);
      break;
    }
    case 'get-many': {
      const items = fs.readFileSync(key, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t'));
      let next = 0;
      const worker = async () => {
        while (next < items.length) {
          const [k, f] = items[next++];
          const r = await request('GET', `/${bucket}/${encodeKey(k)}`);
          if (r.status === 404) continue;
          check(r, `GET ${k}`);
          fs.writeFileSync(f, r.body);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      break;
    }
    case 'head': {
      const r = await request('HEAD', `/${bucket}/${encodeKey(key)}`);
      if (r.status === 404) process.exit(3);
      check(r, `HEAD ${key}`);
      process.stdout.write(JSON.stringify(r.headers));
      break;
    }
    case 'presign-many': {
      const keys = fs.readFileSync(key, 'utf8').split('\n').filter(Boolean);
      const out = [];
      for (const k of keys) {
        const p = await signer.presign({ method: file || 'GET', protocol: 'http:', hostname: url.hostname,
          port: Number(url.port), path: `/${bucket}/${encodeKey(k)}`, query: {},
          headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } },
        { expiresIn: 3600 });
        const q = Object.entries(p.query).map(([n, v]) => `${encodeURIComponent(n)}=${encodeURIComponent(v)}`).join('&');
        out.push(`${endpoint}${p.path}?${q}`);
      }
      process.stdout.write(out.join('\n') + '\n');
      break;
    }
    case 'rm': check(await request('DELETE', `/${bucket}/${encodeKey(key)}`), `DELETE ${key}`); break;
    default: console.error(`s3op: unknown operation ${op}`); process.exit(2);
  }
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
