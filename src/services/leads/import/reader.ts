/**
 * Records of an uploaded CSV file, each with the line it starts on, streamed through csv-parse.
 *
 * What csv-parse cannot recover from by itself, and what happens instead:
 * - A record longer than MAX_RECORD_CHARS (a 10 MB cell, or a quote that is never closed and
 *   swallows the file) and a quote still open at the end of the file. csv-parse gives up on the
 *   rest of the input there: with skip_records_with_error it reports the record and then drops
 *   the rest of the chunk it was parsing, so every row after it would vanish without a word.
 *   Here the failure is reported at the line the record starts on, and reading starts again, in a
 *   fresh parser, from the next line of the file. The upload is a file on disk, so going back is
 *   just a new read stream at an offset, and nothing big is ever held in memory.
 * - A quote inside an unquoted cell (`5'7" tall`) is data (relax_quotes), and a row with the
 *   wrong number of cells is passed on for the importer to report (relax_column_count).
 *
 * Line numbers are counted in the file, 1-based, where the record starts: csv-parse reports the
 * line a record ends on and counts a CRLF inside a quoted cell as two lines, both corrected here.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Parser, type CsvError } from 'csv-parse';

export type CsvEncoding = 'utf8' | 'latin1' | 'utf16le';

/**
 * No lead row comes near this; a longer record is a broken file (or an unclosed quote) and is
 * reported rather than buffered. csv-parse counts it in characters of the record.
 */
export const MAX_RECORD_CHARS = 65_536;

export type ReadItem =
  | { kind: 'record'; line: number; fields: string[] }
  | { kind: 'broken'; line: number; code: 'RECORD_TOO_LARGE' | 'UNCLOSED_QUOTE'; message: string; excerpt: string };

export class UnsupportedEncoding extends Error {}

interface Tracked {
  fields: string[];
  /** csv-parse's line count when the record was complete. */
  lines: number;
  /** Byte offset just past the record, relative to where this parser started reading. */
  end: number;
}

interface Failure {
  failure: CsvError;
}

/**
 * csv-parse hands every finished record to push(); taking it there is the one place where the
 * parser's position (`info`) belongs to that record. The `info: true` option gives the same but
 * copies the whole info object per record, which measured 1.8 s of 4.2 s on a million rows.
 */
class TrackingParser extends Parser {
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) return super.push(null, encoding);
    const t: Tracked = { fields: chunk as string[], lines: this.info.lines, end: this.info.bytes };
    return super.push(t, encoding);
  }

  pushFailure(failure: CsvError): void {
    super.push({ failure } satisfies Failure);
  }
}

const HEAD_BYTES = 64 * 1024;
const EXCERPT_CHARS = 100;

export interface CsvFile {
  path: string;
  size: number;
  encoding: CsvEncoding;
  /** Where the data starts (after a byte order mark). */
  dataStart: number;
  delimiter: string;
}

/**
 * Looks at the start of the file: a byte order mark decides the encoding (UTF-8 or UTF-16LE), else
 * the caller's choice holds; the header line decides the delimiter.
 */
export async function inspectCsv(path: string, encoding: CsvEncoding): Promise<CsvFile> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    await fh.read(head, 0, head.length, 0);
    let enc = encoding;
    let dataStart = 0;
    if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
      enc = 'utf8';
      dataStart = 3;
    } else if (head[0] === 0xff && head[1] === 0xfe) {
      enc = 'utf16le';
      dataStart = 2;
    } else if (head[0] === 0xfe && head[1] === 0xff) {
      throw new UnsupportedEncoding('the file is UTF-16 big-endian: save it as UTF-8 (or UTF-16 little-endian) and upload it again');
    }
    let body = head.subarray(dataStart);
    if (enc === 'utf16le' && body.length % 2 === 1) body = body.subarray(0, body.length - 1);
    return { path, size, encoding: enc, dataStart, delimiter: detectDelimiter(body.toString(enc)) };
  } finally {
    await fh.close();
  }
}

/** The most frequent of comma, semicolon and tab outside quotes on the first line; comma if none. */
export function detectDelimiter(text: string): string {
  const counts: Record<string, number> = { ',': 0, ';': 0, '\t': 0 };
  let quoting = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') quoting = !quoting;
    else if (!quoting && (c === '\n' || c === '\r')) break;
    else if (!quoting && c in counts) counts[c]!++;
  }
  let best = ',';
  for (const d of [';', '\t']) if (counts[d]! > counts[best]!) best = d;
  return best;
}

export class CsvReader {
  /** How far into the file reading has got (for progress). */
  bytesRead = 0;

  constructor(private readonly file: CsvFile) {}

  async *items(): AsyncGenerator<ReadItem> {
    let start = this.file.dataStart;
    // The file line just before `start`: reading from `start` begins at line base + 1.
    let base = 0;
    while (start < this.file.size) {
      const source = createReadStream(this.file.path, { start, highWaterMark: HEAD_BYTES });
      const parser: TrackingParser = new TrackingParser({
        encoding: this.file.encoding,
        delimiter: this.file.delimiter,
        bom: false,
        relax_quotes: true,
        relax_column_count: true,
        skip_empty_lines: true,
        max_record_size: MAX_RECORD_CHARS,
        // Only so that a failure arrives in order after the records before it (an 'error' event
        // would overtake the records still buffered); this parser is dropped at the first one.
        skip_records_with_error: true,
        on_skip: (err) => {
          if (err) parser.pushFailure(err);
          return undefined;
        },
      });
      source.on('error', (err) => parser.destroy(err));
      source.pipe(parser);
      let lastEnd = start;
      let lastLine = base;
      let crlfSoFar = 0;
      let failure: CsvError | undefined;
      try {
        for await (const item of parser as AsyncIterable<Tracked | Failure>) {
          if ('failure' in item) {
            failure = item.failure;
            break;
          }
          const { fields, lines, end } = item;
          let breaks = 0;
          let crlf = 0;
          for (let i = 0; i < fields.length; i++) {
            const f = fields[i]!;
            if (f.indexOf('\n') < 0 && f.indexOf('\r') < 0) continue;
            for (let j = 0; j < f.length; j++) {
              const c = f.charCodeAt(j);
              if (c === 13) {
                breaks++;
                if (f.charCodeAt(j + 1) === 10) {
                  crlf++;
                  j++;
                }
              } else if (c === 10) breaks++;
            }
          }
          crlfSoFar += crlf;
          const endLine = base + lines - crlfSoFar;
          lastEnd = start + end;
          lastLine = endLine;
          this.bytesRead = start + source.bytesRead;
          yield { kind: 'record', line: endLine - breaks, fields };
        }
      } finally {
        source.destroy();
        parser.destroy();
      }
      if (!failure) {
        this.bytesRead = this.file.size;
        return;
      }
      const at = await this.locate(lastEnd, lastLine);
      if (at === null) return;
      const unclosed = failure.code === 'CSV_QUOTE_NOT_CLOSED' || at.openQuote;
      yield unclosed
        ? {
            kind: 'broken',
            line: at.line,
            code: 'UNCLOSED_QUOTE',
            message: `a quote opened on line ${at.line} is never closed, so the record ran on into the lines after it; it was skipped and reading went on at line ${at.line + 1}`,
            excerpt: at.excerpt,
          }
        : {
            kind: 'broken',
            line: at.line,
            code: 'RECORD_TOO_LARGE',
            message: `the record on line ${at.line} is longer than ${MAX_RECORD_CHARS.toLocaleString('en')} characters; it was skipped`,
            excerpt: at.excerpt,
          };
      if (at.next === null) {
        this.bytesRead = this.file.size;
        return;
      }
      start = at.next;
      base = at.line;
      this.bytesRead = start;
    }
  }

  /**
   * From `from` (the start of line `lineBefore` + 1, just past the last good record): skips blank
   * lines to where the broken record starts, and finds the start of the line after that one.
   * Reads in fixed-size chunks, so a 10 MB line costs 10 MB of reading and no memory.
   */
  private async locate(
    from: number,
    lineBefore: number,
  ): Promise<{ line: number; next: number | null; excerpt: string; openQuote: boolean } | null> {
    const wide = this.file.encoding === 'utf16le';
    const unit = wide ? 2 : 1;
    const quote = 0x22;
    const delimiter = this.file.delimiter.charCodeAt(0);
    const fh = await open(this.file.path, 'r');
    try {
      const buf = Buffer.alloc(HEAD_BYTES);
      let pos = from;
      let line = lineBefore + 1;
      let started = false;
      let excerptEnd = -1;
      let recordStart = from;
      let quoting = false;
      let fieldStart = true;
      let pendingQuote = false;
      let afterCr = false;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        const usable = bytesRead - (bytesRead % unit);
        if (usable === 0) {
          if (!started) return null;
          return { line, next: null, excerpt: await this.excerpt(fh, recordStart, excerptEnd), openQuote: quoting && !pendingQuote };
        }
        for (let i = 0; i < usable; i += unit) {
          const c = wide ? buf.readUInt16LE(i) : buf[i]!;
          const at = pos + i;
          if (!started) {
            if (afterCr && c === 10) {
              afterCr = false;
              continue;
            }
            afterCr = false;
            if (c === 13 || c === 10) {
              line++;
              afterCr = c === 13;
              continue;
            }
            started = true;
            recordStart = at;
          }
          if (c === 13 || c === 10) {
            if (excerptEnd < 0) excerptEnd = at;
            let next = at + unit;
            if (c === 13) {
              // A CRLF is one line break; peek at the unit after the CR.
              const peek = Buffer.alloc(unit);
              const r = await fh.read(peek, 0, unit, next);
              if (r.bytesRead === unit && (wide ? peek.readUInt16LE(0) : peek[0]) === 10) next += unit;
            }
            return {
              line,
              next: next >= this.file.size ? null : next,
              excerpt: await this.excerpt(fh, recordStart, excerptEnd),
              openQuote: quoting && !pendingQuote,
            };
          }
          if (excerptEnd < 0 && at - recordStart >= EXCERPT_CHARS * 4) excerptEnd = at;
          // Just enough of CSV quoting to tell "a quote left open on this line" from "a long line".
          if (quoting) {
            if (pendingQuote) {
              pendingQuote = false;
              if (c !== quote) {
                quoting = false;
                fieldStart = c === delimiter;
              }
            } else if (c === quote) pendingQuote = true;
          } else if (c === quote && fieldStart) {
            quoting = true;
            fieldStart = false;
          } else {
            fieldStart = c === delimiter;
          }
        }
        pos += usable;
      }
    } finally {
      await fh.close();
    }
  }

  private async excerpt(fh: Awaited<ReturnType<typeof open>>, start: number, end: number): Promise<string> {
    const stop = end < 0 ? Math.min(this.file.size, start + EXCERPT_CHARS * 4) : end;
    const buf = Buffer.alloc(Math.max(0, Math.min(stop - start, EXCERPT_CHARS * 4)));
    await fh.read(buf, 0, buf.length, start);
    return excerptOf(buf.toString(this.file.encoding));
  }
}

/** The start of a record, short, on one line, and storable (PostgreSQL text takes no NUL). */
export function excerptOf(text: string): string {
  const oneLine = text.replace(/[\r\n]+/g, ' ').replace(/\u0000/g, '\ufffd');
  // A multi-byte character cut at the end decodes to U+FFFD: not part of the file.
  const cut = oneLine.length > EXCERPT_CHARS ? `${oneLine.slice(0, EXCERPT_CHARS)}…` : oneLine.replace(/\ufffd+$/, '');
  return cut;
}
