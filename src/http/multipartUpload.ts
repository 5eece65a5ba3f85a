/**
 * A multipart/form-data parser for the one form that uploads a file (bulk import), registered only in that route's
 * plugin: everywhere else the app's 64 KiB body limit and its JSON and form parsers stay as they are. It runs as a
 * content-type parser, before validation, so the upload's `_csrf` field is checked by the sessions plugin like any
 * form's, and the route's TypeBox schema sees `{ …fields, [fileField]: { filename, text } }`.
 */
import { Busboy, type BusboyHeaders, type BusboyInstance } from '@fastify/busboy';
import type { FastifyInstance } from 'fastify';
import { appError } from '../errors.js';

export interface UploadedFile {
  filename: string;
  /** The file's bytes read as UTF-8. */
  text: string;
}

export function acceptMultipartUpload(app: FastifyInstance, options: { fileField: string; maxFileBytes: number; tooLargeMessage: string }): void {
  app.addContentTypeParser('multipart/form-data', (request, payload, done) => {
    const body: Record<string, string | UploadedFile> = {};
    let finished = false;
    const finish = (err: Error | null, value?: unknown) => {
      if (finished) return;
      finished = true;
      if (err) payload.resume();
      done(err, value);
    };
    let busboy: BusboyInstance;
    try {
      busboy = Busboy({
        headers: request.headers as BusboyHeaders,
        limits: { files: 1, fileSize: options.maxFileBytes, fields: 20, fieldSize: 1024, parts: 22, fieldNameSize: 100 },
      });
    } catch {
      return finish(appError('bad_request', 'The upload could not be read. Choose the file again and resend the form.'));
    }
    let reading = 0;
    busboy.on('file', (field, stream, filename) => {
      if (field !== options.fileField) return void stream.resume();
      reading++;
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        reading--;
        if (stream.truncated) return finish(appError('payload_too_large', options.tooLargeMessage));
        // An empty file input still sends a part, with no name: that is no file.
        if (filename) body[field] = { filename, text: Buffer.concat(chunks).toString('utf8') };
        if (!reading && ended) finish(null, body);
      });
    });
    busboy.on('field', (name, value) => {
      if (name !== options.fileField) body[name] = value;
    });
    let ended = false;
    busboy.on('finish', () => {
      ended = true;
      if (!reading) finish(null, body);
    });
    busboy.on('error', () => finish(appError('bad_request', 'The upload could not be read. Choose the file again and resend the form.')));
    payload.pipe(busboy);
  });
}
