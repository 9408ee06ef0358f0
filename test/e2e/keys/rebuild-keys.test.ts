/**
 * Issue 21 item 5: keys and rebuilds. A rebuilt server's `init` pointed at a vault that already
 * holds snapshots refuses to make a new passphrase or key (exit 2, nothing written) and says how to
 * reuse the old one; --passphrase-file is checked against the newest snapshot (it must decrypt
 * it), --recipients against the keys its parts are encrypted to; `list` shows what opens each one.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorSentence, runCli } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';

const cluster = clusterPerFile('source');
let redis: RedisServer;
let dir: string;
let live: string;

beforeAll(() => {
  redis = startRedis();
  const pg = cluster.get();
  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-rebuild-'));
  chmodSync(dir, 0o755);
  live = path.join(dir, 'live');
  mkdirSync(path.join(live, 'public', 'system'), { recursive: true });
  const env = [
    `DB_HOST=${pg.socketDir}`,
    `DB_PORT=${pg.port}`,
    'DB_NAME=source',
    `DB_USER=${pg.user}`,
    'DB_PASS=not-needed-with-trust',
    `REDIS_URL=unix://${redis.socket}`,
    'SECRET_KEY_BASE=abc',
  ].join('\n');
  writeFileSync(path.join(live, '.env.production'), `${env}\n`, { mode: 0o600 });
});
afterAll(() => {
  destroyRedis(redis);
  rmSync(dir, { recursive: true, force: true });
});

const server = (name: string) => path.join(dir, name, 'permafrost.yaml');
const init = (config: string, vault: string, ...flags: string[]) =>
  runCli(['--config', config, 'init', '--mastodon', live, '--vault', vault, ...flags]);
async function backup(config: string): Promise<string> {
  const r = await runCli(['--config', config, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}
type Row = { id: string; opensWith: { passphrase: boolean; recipients: string[] } };
const list = async (vault: string) =>
  JSON.parse((await runCli(['list', '--vault', vault, '--json'], { env: { PERMAFROST_CONFIG: '' } })).stdout) as Row[];

describe('a rebuilt server keeps the key its vault needs', () => {
  it('passphrase: init refuses a new one (exit 2, nothing written), takes the old one after checking it, and list shows what opens each snapshot', async () => {
    const vault = path.join(dir, 'vault-pass');
    expect((await init(server('old'), vault)).code).toBe(0);
    const first = await backup(server('old'));

    // The server is gone; the new one points init at the device's copy (here: the same folder).
    const refused = await init(server('new'), vault);
    expect(refused.code).toBe(2);
    expect(errorSentence(refused.stderr)).toContain(`${vault} already holds 1 snapshot (newest ${first}, opened by passphrase)`);
    expect(errorSentence(refused.stderr)).toContain('--passphrase-file FILE');
    expect(errorSentence(refused.stderr)).toContain('--recipients PUBLIC.asc');
    expect(existsSync(path.join(dir, 'new'))).toBe(false);
    const gen = await init(server('new'), vault, '--generate-keys', path.join(dir, 'move-me'));
    expect(gen.code).toBe(2);
    expect(errorSentence(gen.stderr)).toContain('--generate-keys would make a new key and split the vault');

    const wrong = path.join(dir, 'wrong-passphrase');
    writeFileSync(wrong, 'not the one\n', { mode: 0o600 });
    const bad = await init(server('new'), vault, '--passphrase-file', wrong);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toContain(`that passphrase does not open snapshot ${first}`);
    expect(existsSync(path.join(dir, 'new'))).toBe(false);

    const old = path.join(dir, 'old', 'passphrase');
    const ok = await init(server('new'), vault, '--passphrase-file', old);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('the snapshots already there open with passphrase; new ones use the same key');
    expect(readFileSync(path.join(dir, 'new', 'passphrase'), 'utf8')).toBe(readFileSync(old, 'utf8'));
    const second = await backup(server('new'));
    expect((await list(vault)).map((r) => [r.id, r.opensWith])).toEqual([
      [second, { passphrase: true, recipients: [] }],
      [first, { passphrase: true, recipients: [] }],
    ]);
    const tty = await runCli(['list', '--vault', vault], { env: { PERMAFROST_CONFIG: '' } });
    expect(tty.stdout.split('\n')[0]!.split('\t').at(-1)).toBe('KEY');
    expect(tty.stdout.split('\n')[1]!.split('\t').at(-1)).toBe('passphrase');
  });

  it('public keys: init --recipients takes the old public key, refuses another one', async () => {
    const vault = path.join(dir, 'vault-keys');
    for (const d of ['secret-keys', 'other-keys']) mkdirSync(path.join(dir, d), { mode: 0o700 });
    const made = await init(server('old-keys'), vault, '--generate-keys', path.join(dir, 'secret-keys'), '--json');
    expect(made.code, made.stderr).toBe(0);
    const keys = (JSON.parse(made.stdout) as { keys: { recipientPublic: string; recipientFingerprint: string } }).keys;
    const first = await backup(server('old-keys'));
    expect((await list(vault))[0]!.opensWith).toEqual({ passphrase: false, recipients: [keys.recipientFingerprint] });

    // Another key (of another vault) is refused; the old one is taken.
    const other = await init(server('other'), path.join(dir, 'vault-other'), '--generate-keys', path.join(dir, 'other-keys'), '--json');
    const otherPublic = (JSON.parse(other.stdout) as { keys: { recipientPublic: string } }).keys.recipientPublic;
    const wrong = await init(server('new-keys'), vault, '--recipients', otherPublic);
    expect(wrong.code).toBe(2);
    expect(errorSentence(wrong.stderr)).toContain(
      `opens none of the snapshots in ${vault} (newest ${first} is opened by key ${keys.recipientFingerprint})`,
    );
    const ok = await init(server('new-keys'), vault, '--recipients', keys.recipientPublic);
    expect(ok.code, ok.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'new-keys', 'passphrase'))).toBe(false);
    await backup(server('new-keys'));
    expect((await list(vault)).map((r) => r.opensWith)).toEqual([
      { passphrase: false, recipients: [keys.recipientFingerprint] },
      { passphrase: false, recipients: [keys.recipientFingerprint] },
    ]);
  });
});
