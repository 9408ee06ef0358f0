import { describe, expect, it } from 'vitest';
import { isMediaPath, needsCopy, planCopy, type MediaEntry } from '../../../src/offsite/media.js';

const md5a = '0cc175b9c0f1b6a831c399e269772661';
const md5b = '92eb5ffee6ae2fec3ad71c777531578f';

describe('media paths', () => {
  it.each([
    ['media_attachments/files/110/000/001/original/c3d4.jpg', true],
    ['accounts/avatars/000/000/001/original/a.png', true],
    ['cache/media_attachments/files/1/original/x.jpg', false],
    ['cache', false],
    ['../etc/passwd', false],
    ['a/../../b', false],
    ['/abs/path', false],
    ['a//b', false],
    ['a/./b', false],
    ['a\\b', false],
    ['', false],
    ['cached/ok.png', true],
  ])('%s → %s', (rel, ok) => expect(isMediaPath(rel)).toBe(ok));
});

describe('what a run copies', () => {
  const obj = (size: number, etag: string | null, modified = 1000): MediaEntry => ({ size, etag, modified });
  it('by key, size and a comparable ETag; a multipart ETag leaves size as the judge; a local file also by its mtime', () => {
    expect(needsCopy(obj(5, md5a), undefined)).toBe(true);
    expect(needsCopy(obj(5, md5a), obj(6, md5a))).toBe(true);
    expect(needsCopy(obj(5, md5a), obj(5, md5a))).toBe(false);
    expect(needsCopy(obj(5, md5a), obj(5, md5b))).toBe(true);
    expect(needsCopy(obj(5, `${md5a}-3`), obj(5, md5b))).toBe(false);
    expect(needsCopy(obj(5, null, 2000), obj(5, md5a, 1000))).toBe(true);
    expect(needsCopy(obj(5, null, 1000), obj(5, md5a, 2000))).toBe(false);
    // Written 0.7 s into the second its copy was stored (LastModified has whole seconds): not newer.
    expect(needsCopy(obj(5, null, 1_700), obj(5, md5a, 1_000))).toBe(false);
  });
  it('plans sorted paths, never cache/ nor hostile ones, with the bytes to move', () => {
    const src = new Map([
      ['b/new.png', obj(10, md5a)],
      ['a/same.png', obj(3, md5a)],
      ['cache/x.png', obj(7, md5a)],
      ['../evil', obj(1, md5a)],
      ['a/changed.png', obj(4, md5b)],
    ]);
    const dst = new Map([
      ['a/same.png', obj(3, md5a)],
      ['a/changed.png', obj(4, md5a)],
    ]);
    expect(planCopy(src, dst)).toEqual({ copy: ['a/changed.png', 'b/new.png'], unchanged: 1, bytes: 14 });
  });
});
