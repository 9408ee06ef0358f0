import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, resolveConfigPath } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { UserError } from '../../../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-cfg-'));
const pass = path.join(dir, 'pass');
writeFileSync(pass, 'x\n', { mode: 0o600 });

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as UserError).details;
  }
  return [];
}

describe('config', () => {
  it('accepts a minimal config and fills defaults', () => {
    const c = parseConfig(`database: {name: m}\nvault: {dir: ${dir}/v, passphraseFile: ${pass}}\n`, 'test.yaml');
    expect(requireSource(c, 'backup').database).toEqual({ name: 'm', compression: 1 });
    expect(c.configPath).toBe('test.yaml');
  });

  it('reports every problem at once with its key path', () => {
    expect(problems(`database: {name: 3, port: 70000, bogus: 1}\nvault: {dir: relative}\nzzz: 1\n`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^database\.name: /),
        expect.stringMatching(/^database\.port: /),
        'database.bogus: unknown key (remove it or check its spelling)',
        'vault.dir: expected an absolute path',
        'zzz: unknown key (remove it or check its spelling)',
      ]),
    );
  });

  it('requires absolute paths in every section, not only vault (the daemon runs from another directory)', () => {
    const base = `database: {name: m}\nvault: {dir: ${dir}/v, passphraseFile: ${pass}}\n`;
    expect(problems(`${base}secrets: {file: env.production}\nweb: {listen: '127.0.0.1:8080', tokenFile: token}\n`)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^secrets(\.file)?: .*absolute path/),
        expect.stringMatching(/^web\.tokenFile: expected an absolute path$/),
      ]),
    );
    expect(problems(`${base}secrets: {file: ${dir}/env.production}\n`)).toEqual([]);
  });

  it('checks vault.tempDir at load: it exists, is a folder, and is not writable by others without the sticky bit', () => {
    const base = (tempDir: string): string => `database: {name: m}\nvault: {dir: ${dir}/v, passphraseFile: ${pass}, tempDir: ${tempDir}}\n`;
    const open = path.join(dir, 'open');
    const sticky = path.join(dir, 'sticky');
    const own = path.join(dir, 'own');
    for (const d of [open, sticky, own]) mkdirSync(d, { recursive: true });
    chmodSync(open, 0o777);
    chmodSync(sticky, 0o1777);
    chmodSync(own, 0o700);
    expect(problems(base(`${dir}/missing`))).toEqual([
      expect.stringMatching(new RegExp(`^vault\\.tempDir: folder ${dir}/missing does not exist; create it`)),
    ]);
    expect(problems(base(pass))).toEqual([`vault.tempDir: ${pass} is not a folder; point vault.tempDir at one`]);
    expect(problems(base(open))).toEqual([
      expect.stringMatching(new RegExp(`^vault\\.tempDir: ${open} is writable by every user but lacks the sticky bit.*chmod \\+t ${open}`)),
    ]);
    expect(problems(base(sticky))).toEqual([]);
    expect(problems(base(own))).toEqual([]);
  });

  it('refuses notify.mastodon.server over plain http:// beyond loopback (requests carry the bot token)', () => {
    const base = `database: {name: m}\nvault: {dir: ${dir}/v, passphraseFile: ${pass}}\n`;
    const mastodon = (server: string): string => `${base}notify: {mastodon: {server: "${server}", tokenFile: ${pass}, to: "@admin"}}\n`;
    expect(problems(mastodon('http://mastodon.example.org'))).toEqual([
      'notify.mastodon.server: plain http:// would send the bot token unencrypted; use https:// (http:// only to 127.0.0.1, ::1 or localhost)',
    ]);
    expect(problems(mastodon('http://10.0.0.5:3000'))).toHaveLength(1);
    for (const ok of ['https://mastodon.example.org', 'http://127.0.0.1:3000', 'http://[::1]:3000', 'http://localhost:3000']) {
      expect(problems(mastodon(ok)), ok).toEqual([]);
    }
    expect(problems(mastodon('not a url'))).toEqual(['notify.mastodon.server: expected an http:// or https:// URL']);
  });

  it('reports invalid YAML with its line', () => {
    expect(() => parseConfig('database: [\n', 'bad.yaml')).toThrow(/bad.yaml is not valid YAML at line/);
  });

  it('resolves --config, then $PERMAFROST_CONFIG', () => {
    expect(resolveConfigPath('/a/b.yaml', {})).toBe('/a/b.yaml');
    expect(resolveConfigPath(undefined, { PERMAFROST_CONFIG: '/c/d.yaml' })).toBe('/c/d.yaml');
  });
});

describe('--vault', () => {
  it('overrides vault.dir of a config file', () => {
    const other = mkdtempSync(path.join(tmpdir(), 'permafrost-vault-'));
    const c = parseConfig(`vault: {dir: ${dir}/v}\n`, 'test.yaml', { vault: other });
    expect(c.vault.dir).toBe(other);
    expect(c.role).toBe('receiver');
  });
});
