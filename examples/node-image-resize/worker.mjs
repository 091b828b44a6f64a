#!/usr/bin/env node
// node-image-resize - a spool worker (spool-client) that makes thumbnails
// of the jobs of queue `thumbnails` with sharp; the Node twin of
// examples/image-resize.
//
// Payload: {"src": "in.jpg", "dst": "out.png", "width": 200}. The image is
// resized to `width` pixels wide, keeping its aspect ratio, in the format
// named by dst's extension (jpg/jpeg, png, webp, avif, tiff, gif). The
// output is written under a temporary name next to dst and renamed into
// place, so a reader never sees half a file and a redelivered job simply
// writes it again. A missing source, a file that is not an image, a bad
// width or an unwritable destination send the job dead with that text
// (retrying cannot fix them); anything else is retried.
//
// Settings (environment): SPOOL_URL (spool://127.0.0.1:7379), CONCURRENCY
// (the number of cores), QUEUE (thumbnails). Stops cleanly on SIGTERM/SIGINT.
import { availableParallelism } from 'node:os';
import { rename, stat, unlink } from 'node:fs/promises';
import { dirname, basename, extname, join } from 'node:path';
import sharp from 'sharp';
import { Worker, UnrecoverableError, closeOnSignals } from 'spool-client';

const env = process.env;
const FORMATS = { '.jpg': 'jpeg', '.jpeg': 'jpeg', '.png': 'png', '.webp': 'webp', '.avif': 'avif', '.tif': 'tiff', '.tiff': 'tiff', '.gif': 'gif' };
sharp.cache(false); // a source rewritten under the same name is read again

function check(d) {
  if (!d || typeof d !== 'object')
    throw new UnrecoverableError('payload must be an object {"src","dst","width"}');
  for (const k of ['src', 'dst'])
    if (typeof d[k] !== 'string' || d[k] === '')
      throw new UnrecoverableError(`payload field "${k}" is missing or not a string`);
  if (!Number.isInteger(d.width) || d.width < 1 || d.width > 10000)
    throw new UnrecoverableError(`payload field "width" must be a whole number from 1 to 10000 (got ${JSON.stringify(d.width)})`);
  const format = FORMATS[extname(d.dst).toLowerCase()];
  if (!format)
    throw new UnrecoverableError(`destination ${d.dst}: unknown extension (use one of ${Object.keys(FORMATS).join(' ')})`);
  return format;
}

async function resize(job) {
  const { src, dst, width } = job.data ?? {};
  const format = check(job.data);
  try {
    await stat(src);
  } catch (e) {
    throw new UnrecoverableError(`source image ${src}: ${e.code === 'ENOENT' ? 'No such file or directory' : e.message}`);
  }
  let image;
  try {
    image = sharp(src, { failOn: 'error' });
    await image.metadata();
  } catch (e) {
    throw new UnrecoverableError(`cannot read ${src} as an image: ${e.message}`);
  }
  const tmp = join(dirname(dst), `.${basename(dst)}.${job.id}.tmp`);
  let info;
  try {
    info = await image.resize({ width }).toFormat(format).toFile(tmp);
    await rename(tmp, dst);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw new UnrecoverableError(`cannot write ${dst}: ${e.message}`);
  }
  return { dst, width: info.width, height: info.height };
}

const worker = new Worker(env.QUEUE ?? 'thumbnails', resize, {
  connection: env.SPOOL_URL,
  concurrency: Number(env.CONCURRENCY ?? availableParallelism()),
  name: 'node-image-resize',
});
worker.on('failed', (job, err, state) => console.error(`job ${job.id} ${state}: ${err.message}`));
worker.on('error', (err) => console.error(`worker: ${err.message}`));
closeOnSignals(worker);
