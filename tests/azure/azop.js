// A small Azure Blob client for the tests that is not Strata: the official
// Azure SDK for JavaScript (@azure/storage-blob) against Azurite's
// well-known account, so containers can be made, filled and inspected.
//
//   node azop.js ENDPOINT mb CONTAINER
//   node azop.js ENDPOINT put CONTAINER NAME FILE [META_JSON]   META_JSON: {"name": "value"}
//   node azop.js ENDPOINT put-many CONTAINER LISTFILE      lines "NAME<TAB>FILE", 16 at a time
//   node azop.js ENDPOINT get CONTAINER NAME FILE          exit 3 when the blob is absent
//   node azop.js ENDPOINT head CONTAINER NAME              {contentType, etag, metadata} as JSON; exit 3 when absent
//   node azop.js ENDPOINT rm CONTAINER NAME
//   node azop.js ENDPOINT list CONTAINER PREFIX            one name per line (no delimiter)
//   node azop.js ENDPOINT sas CONTAINER NAME               a URL of the blob with a SAS (read, write, create), valid 1 hour
//   node azop.js ENDPOINT container-sas CONTAINER PERMS    a SAS token for the container (e.g. racwdl), valid 1 hour
//   node azop.js ENDPOINT put-blocks CONTAINER NAME FILE   the SDK's parallel block upload (16 MiB blocks, 4 at once)
//   node azop.js ENDPOINT get-ranges CONTAINER NAME FILE   the SDK's parallel ranged download (4 MiB ranges, 4 at once)
// ENDPOINT is the blob endpoint with the account: http://127.0.0.1:PORT/devstoreaccount1.
// Every request has a 60 s deadline.
const fs = require('fs');
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const [endpoint, op, container, name, file, meta] = process.argv.slice(2);
const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(ACCOUNT, KEY),
  { retryOptions: { maxTries: 3, tryTimeoutInMs: 60000 } });
const c = service.getContainerClient(container);

async function main() {
  switch (op) {
    case 'mb':
      await c.createIfNotExists();
      return;
    case 'put': {
      const data = fs.readFileSync(file);
      await c.getBlockBlobClient(name).upload(data, data.length, { metadata: meta ? JSON.parse(meta) : undefined });
      return;
    }
    case 'put-many': {
      const lines = fs.readFileSync(name, 'utf8').split('\n').filter((l) => l.length > 0);
      for (let i = 0; i < lines.length; i += 16) {
        await Promise.all(lines.slice(i, i + 16).map((l) => {
          const [n, f] = l.split('\t');
          const data = fs.readFileSync(f);
          return c.getBlockBlobClient(n).upload(data, data.length);
        }));
      }
      return;
    }
    case 'get':
      try {
        await c.getBlobClient(name).downloadToFile(file);
      } catch (e) {
        if (e.statusCode === 404) process.exit(3);
        throw e;
      }
      return;
    case 'head':
      try {
        const p = await c.getBlobClient(name).getProperties();
        process.stdout.write(JSON.stringify({ contentType: p.contentType, etag: p.etag, metadata: p.metadata }));
      } catch (e) {
        if (e.statusCode === 404) process.exit(3);
        throw e;
      }
      return;
    case 'rm':
      await c.getBlobClient(name).deleteIfExists();
      return;
    case 'list':
      for await (const b of c.listBlobsFlat({ prefix: name || '' })) process.stdout.write(b.name + '\n');
      return;
    case 'sas': {
      const { BlobSASPermissions } = require('@azure/storage-blob');
      const url = await c.getBlobClient(name).generateSasUrl({
        permissions: BlobSASPermissions.parse('rwc'), expiresOn: new Date(Date.now() + 3600 * 1000) });
      process.stdout.write(url + '\n');
      return;
    }
    case 'put-blocks':
      await c.getBlockBlobClient(name).uploadFile(file, { blockSize: 16 << 20, concurrency: 4, maxSingleShotSize: 1 });
      return;
    case 'get-ranges':
      await c.getBlobClient(name).downloadToFile(file, 0, undefined, { blockSize: 4 << 20, concurrency: 4 });
      return;
    case 'container-sas': {
      const { ContainerSASPermissions } = require('@azure/storage-blob');
      const url = await c.generateSasUrl({
        permissions: ContainerSASPermissions.parse(name), expiresOn: new Date(Date.now() + 3600 * 1000) });
      process.stdout.write(url.slice(url.indexOf('?') + 1) + '\n');
      return;
    }
    default:
      throw new Error('unknown op ' + op);
  }
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });
