// The AWS SDK for JavaScript v3 against the gateway: each step's outcome is
// checked here (bytes compared, error codes matched) and the script exits 1
// at the first that is wrong, naming it.
//   node sdk_check.js ENDPOINT BUCKET     keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
const { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command,
  CopyObjectCommand, DeleteObjectsCommand, CreateMultipartUploadCommand, UploadPartCommand,
  CompleteMultipartUploadCommand } = require('@aws-sdk/client-s3');
const crypto = require('crypto');
const { Readable } = require('stream');

const [endpoint, bucket] = process.argv.slice(2);
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1,
  requestHandler: { requestTimeout: 60000 } });

function fail(step, why) {
  console.error(`sdk_check: ${step}: ${why}`);
  process.exit(1);
}
async function bytesOf(body) {
  const chunks = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}
async function expectError(step, promise, code) {
  try {
    await promise;
  } catch (e) {
    if (e.name === code || e.Code === code) return;
    fail(step, `expected ${code}, got ${e.name}: ${e.message}`);
  }
  fail(step, `expected ${code}, it succeeded`);
}

async function main() {
  const small = crypto.randomBytes(1000);
  const big = crypto.randomBytes(3 * 1024 * 1024 + 17);
  // A Buffer body, and a stream body: the SDK sends the latter aws-chunked
  // (with a checksum trailer when it adds one).
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sdk/small', Body: small }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sdk/stream', Body: Readable.from([big]),
    ContentLength: big.length, ChecksumAlgorithm: 'CRC32' }));
  for (const [key, want] of [['sdk/small', small], ['sdk/stream', big]]) {
    const got = await bytesOf((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
    if (!got.equals(want)) fail(`GET ${key}`, `${got.length} bytes, not the ${want.length} put`);
  }
  const range = await bytesOf((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sdk/stream',
    Range: 'bytes=100-199' }))).Body);
  if (!range.equals(big.subarray(100, 200))) fail('GET range', 'wrong bytes');
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'sdk/stream' }));
  if (head.ContentLength !== big.length) fail('HEAD', `ContentLength ${head.ContentLength}`);
  await expectError('GET missing', s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sdk/none' })), 'NoSuchKey');
  await expectError('If-None-Match *', s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'sdk/small', Body: small,
    IfNoneMatch: '*' })), 'PreconditionFailed');
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'sdk/copy', CopySource: `${bucket}/sdk/small` }));
  // Multipart: two parts, the first at the 5 MiB minimum.
  const p1 = crypto.randomBytes(5 * 1024 * 1024), p2 = crypto.randomBytes(1234);
  const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'sdk/mp' }));
  const e1 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'sdk/mp', UploadId: up.UploadId, PartNumber: 1, Body: p1 }));
  const e2 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'sdk/mp', UploadId: up.UploadId, PartNumber: 2, Body: p2 }));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'sdk/mp', UploadId: up.UploadId,
    MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1.ETag }, { PartNumber: 2, ETag: e2.ETag }] } }));
  const mp = await bytesOf((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'sdk/mp' }))).Body);
  if (!mp.equals(Buffer.concat([p1, p2]))) fail('multipart', 'wrong bytes');
  const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'sdk/', MaxKeys: 2 }));
  if (!list.IsTruncated || list.Contents.length !== 2) fail('list page', JSON.stringify(list.Contents));
  const rest = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'sdk/',
    ContinuationToken: list.NextContinuationToken }));
  const keys = [...list.Contents, ...rest.Contents].map((c) => c.Key).join(',');
  if (keys !== 'sdk/copy,sdk/mp,sdk/small,sdk/stream') fail('list', keys);
  const del = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'sdk/copy' }, { Key: 'sdk/mp' }] } }));
  if ((del.Deleted || []).length !== 2) fail('DeleteObjects', JSON.stringify(del));
  console.log('sdk_check: all steps passed');
}
main().catch((e) => fail('unexpected', `${e.name}: ${e.message}`));
