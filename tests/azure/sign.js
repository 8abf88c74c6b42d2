// Signs requests with the Azure SDK's Shared Key policy (@azure/storage-common's
// storageSharedKeyCredentialPolicy, what @azure/storage-blob sends with) so
// Strata's own signer can be compared with it (tests/unit/azure_test.cc).
// stdin: [{method, url (as Strata sends it), headers: [[name, value]...],
// date (the x-ms-date value), account, key (base64)}];
// stdout: the Authorization headers, as JSON.
const { storageSharedKeyCredentialPolicy } = require('@azure/storage-common');
const { createPipelineRequest, createHttpHeaders } = require('@azure/core-rest-pipeline');

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = [];
  for (const r of input) {
    // The policy stamps x-ms-date with the clock: give it the request's.
    Date.prototype.toUTCString = () => r.date;
    const policy = storageSharedKeyCredentialPolicy({ accountName: r.account, accountKey: Buffer.from(r.key, 'base64') });
    const headers = createHttpHeaders();
    for (const [k, v] of r.headers) headers.set(k, v);
    const req = createPipelineRequest({ url: r.url, method: r.method, headers });
    let auth = '';
    await policy.sendRequest(req, async (signed) => {
      auth = signed.headers.get('authorization');
      return { request: signed, status: 200, headers: createHttpHeaders() };
    });
    out.push(auth);
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
