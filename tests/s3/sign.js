// Signs requests with the AWS SDK's SigV4 signer (@smithy/signature-v4) so
// Strata's own signer can be compared with it (tests/unit/sigv4_test.cc).
// stdin: [{path (already URI-encoded once), query, headers, region, date,
// access_key, secret_key}]; stdout: the Authorization headers, as JSON.
const { SignatureV4 } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = [];
  for (const r of input) {
    const signer = new SignatureV4({
      service: 's3',
      region: r.region,
      credentials: { accessKeyId: r.access_key, secretAccessKey: r.secret_key },
      sha256: Sha256,
      uriEscapePath: false,  // S3 encodes the path once
      applyChecksum: false,
    });
    const [host, port] = r.headers.host.split(':');
    const signed = await signer.sign(
      { method: 'GET', protocol: 'http:', hostname: host, port: Number(port), path: r.path,
        query: r.query, headers: { ...r.headers } },
      { signingDate: new Date(r.date) });
    out.push(signed.headers.authorization);
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
