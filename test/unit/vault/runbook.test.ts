import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SourceConfig } from '../../../src/config/schema.js';
import { SNAPSHOT_IGNORES } from '../../../src/replicate/plan.js';
import { ATOMIC_TEMP_PREFIX } from '../../../src/vault/fs-durable.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { renderRestoreMd, runbookFacts, type RunbookFacts } from '../../../src/vault/runbook.js';
import { REPO } from '../../harness/env.js';

const SCRIPT = path.join(REPO, 'scripts/restore.sh');

const facts: RunbookFacts = {
  host: 'social.example',
  database: 'mastodon_production',
  owner: 'mastodon',
  encoding: 'UTF8',
  collate: 'en_US.UTF-8',
  ctype: 'en_US.UTF-8',
  vaultDir: '/var/lib/permafrost/snapshots',
  passphraseFile: '/etc/permafrost/passphrase',
  mediaDir: '/home/mastodon/live/public/system',
  mastodonDir: '/home/mastodon/live',
  redis: true,
  secrets: true,
  roles: true,
  signer: null,
  version: '0.1.0',
};

describe('RESTORE.md', () => {
  it('embeds nothing volatile: a rebuilt server (another permafrost version, same names) writes the same bytes, so a device sees no change and no conflict', () => {
    expect(renderRestoreMd({ ...facts, version: '9.9.9' })).toBe(renderRestoreMd(facts));
    const md = renderRestoreMd(facts);
    expect(md).toContain(
      'permafrost init --mastodon /home/mastodon/live --vault /var/lib/permafrost/snapshots --passphrase-file /root/passphrase',
    );
    expect(renderRestoreMd({ ...facts, passphraseFile: null })).toContain('--recipients RECIPIENT.asc');
  });

  it("names this instance's database, owner, folders and the stock commands with its locale", () => {
    const md = renderRestoreMd(facts);
    expect(md).toContain('# Restoring social.example from this folder');
    expect(md).toContain('database **mastodon_production** owned by role **mastodon**');
    expect(md).toContain('on social.example: `/var/lib/permafrost/snapshots`');
    expect(md).toContain(
      'runuser -u postgres -- createdb -T template0 -O mastodon -E UTF8 --lc-collate=en_US.UTF-8 --lc-ctype=en_US.UTF-8 mastodon_production',
    );
    expect(md).toContain('--output /home/mastodon/live/.env.production "$SNAP/env.production.gpg"');
    expect(md).toContain('chmod 0600 /home/mastodon/live/.env.production');
    expect(md).toContain('chown redis:redis /var/lib/redis/dump.rdb');
    expect(md).toContain('chown -R mastodon:mastodon /home/mastodon/live/public/system');
    expect(md).toContain('permafrost restore --vault "$PWD" --passphrase-file - < /root/passphrase');
    expect(md).toContain('| 3 | integrity: manifest unreadable');
    expect(md).not.toContain('createuser mastodon`), and any other role');
  });

  it('says how a delta-mode snapshot is restored by hand: its chain back to the base, then the files in order', () => {
    const md = renderRestoreMd(facts);
    expect(md).toContain('follow `"reference"` from folder to folder back to the base');
    const order = [
      '$GPG --output /root/schema.pgdump "$BASE/schema.pgdump.gpg"',
      'pg_restore --exit-on-error --section=pre-data -d mastodon_production < /root/schema.pgdump',
      '$GPG "$BASE/rows.sql.gpg" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d mastodon_production >/dev/null',
      '$GPG "$DELTA/delta.sql.gpg" | runuser -u postgres -- psql …    # the same for each delta, depth 1 first, "$SNAP" last',
      'pg_restore --exit-on-error --section=post-data -d mastodon_production < /root/schema.pgdump',
    ].map((line) => md.indexOf(line));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(md).toContain('a snapshot of the chain missing, a restored table unlike its manifest |');
  });

  it('a signed vault: the signer in two sentences, and every restore command pins it with --signer; an unsigned one says nothing proves who wrote it', () => {
    const fpr = '0123456789ABCDEF0123456789ABCDEF01234567';
    const md = renderRestoreMd({ ...facts, signer: fpr });
    expect(md).toContain(`Every manifest here is signed by the key **${fpr}**: restore.sh and \`permafrost restore\``);
    expect(md).toContain('so give the fingerprint you kept when `permafrost init` or `permafrost doctor` printed it');
    expect(md).toContain(`sh restore.sh --passphrase-file /root/passphrase --signer ${fpr}            # the newest snapshot`);
    expect(md).toContain(`sh restore.sh --passphrase-file /root/passphrase --signer ${fpr} "$SNAP"    # a named one`);
    expect(md).toContain(`runuser -u postgres -- sh restore.sh --passphrase-file - --signer ${fpr} < /root/passphrase`);
    expect(md).toContain(`runuser -u postgres -- permafrost restore --vault "$PWD" --passphrase-file - --signer ${fpr} < /root/passphrase`);
    expect(md).toContain('gpg --verify "$SNAP/manifest.json.sig" "$SNAP/manifest.json"');
    const unsigned = renderRestoreMd(facts);
    expect(unsigned).not.toContain('--signer ');
    expect(unsigned).toContain("This instance's manifests are not signed");
  });

  it('snapshots without roles, Redis or secrets parts say what to do instead', () => {
    const md = renderRestoreMd({ ...facts, roles: false, redis: false, secrets: false, encoding: null, collate: null, ctype: null });
    expect(md).toContain('runuser -u postgres -- createuser mastodon');
    expect(md).toContain('runuser -u postgres -- createdb -T template0 -O mastodon mastodon_production\n');
    expect(md).toContain('hold no Redis part');
    expect(md).toContain('hold no secrets part');
  });

  it("the media step, run verbatim where rsync is absent, copies a device's media folder without Syncthing's files and cache/, owned by mastodon", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'permafrost-media-'));
    try {
      // A device-like media folder: Syncthing's marker, ignores and versions beside the media.
      const device = path.join(root, 'nas', 'media');
      const files: Record<string, string> = {
        'media_attachments/files/109/001/original/a.png': 'png',
        'accounts/avatars/1/original/me.jpg': 'jpg',
        '.stfolder/.keep': '',
        '.stignore': 'cache/**\n',
        '.stversions/media_attachments/files/old~20261201.png': 'old',
        'cache/media_attachments/remote.png': 'remote',
      };
      for (const [f, body] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(device, f)), { recursive: true });
        writeFileSync(path.join(device, f), body);
      }
      const target = path.join(root, 'live', 'public', 'system');
      const md = renderRestoreMd({ ...facts, mediaDir: target, mastodonDir: path.join(root, 'live') });
      const section = md.slice(md.indexOf('## 6. Media'), md.indexOf('## 7.'));
      const commands = section
        .split('\n')
        .filter((l) => l.startsWith('    '))
        .map((l) => l.slice(4))
        .join('\n');
      expect(commands).not.toContain('rsync');
      // A PATH of the tools a minimal Debian has, without rsync.
      const bin = path.join(root, 'bin');
      mkdirSync(bin);
      for (const tool of ['sh', 'tar', 'mkdir', 'chown']) {
        const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
        symlinkSync(where, path.join(bin, tool));
      }
      expect(spawnSync(path.join(bin, 'sh'), ['-c', 'command -v rsync'], { env: { PATH: bin } }).status).not.toBe(0);
      const run = spawnSync(path.join(bin, 'sh'), ['-e', '-c', commands], {
        encoding: 'utf8',
        env: { PATH: bin, DEVICE_MEDIA: device },
      });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const copied = spawnSync('find', ['.', '-mindepth', '1'], { cwd: target, encoding: 'utf8' })
        .stdout.split('\n')
        .filter(Boolean)
        .sort();
      expect(copied).toEqual([
        './accounts',
        './accounts/avatars',
        './accounts/avatars/1',
        './accounts/avatars/1/original',
        './accounts/avatars/1/original/me.jpg',
        './media_attachments',
        './media_attachments/files',
        './media_attachments/files/109',
        './media_attachments/files/109/001',
        './media_attachments/files/109/001/original',
        './media_attachments/files/109/001/original/a.png',
      ]);
      expect(readFileSync(path.join(target, 'media_attachments/files/109/001/original/a.png'), 'utf8')).toBe('png');
      const mastodon = spawnSync('id', ['-u', 'mastodon'], { encoding: 'utf8' });
      if (mastodon.status === 0)
        expect(statSync(path.join(target, 'accounts/avatars/1/original/me.jpg')).uid).toBe(Number(mastodon.stdout.trim()));
      // Without DEVICE_MEDIA it stops with a sentence instead of copying the current folder.
      const unset = spawnSync(path.join(bin, 'sh'), ['-e', '-c', commands], { encoding: 'utf8', env: { PATH: bin } });
      expect(unset.status).not.toBe(0);
      expect(unset.stderr).toContain("set DEVICE_MEDIA to the copy of the device's media folder");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("takes Mastodon's folder from the secrets file, else from media's public/system", () => {
    const manifest = {
      id: '2026-11-26T07-40-00Z',
      host: 'h',
      database: { name: 'db', serverVersion: '15', pgDumpVersion: '15', compression: '1' },
      files: [],
    } as unknown as Manifest;
    const config = {
      database: { name: 'db', user: 'owner' },
      vault: { dir: '/v', passphraseFile: '/p' },
      media: { dir: '/srv/masto/public/system' },
    } as unknown as SourceConfig;
    expect(runbookFacts(config, manifest)).toMatchObject({ mastodonDir: '/srv/masto', owner: 'owner', roles: false });
    const withSecrets = { ...config, secrets: { file: '/opt/m/.env.production', optional: false } } as SourceConfig;
    expect(runbookFacts(withSecrets, manifest).mastodonDir).toBe('/opt/m');
  });
});

describe('restore.sh', () => {
  it('is POSIX sh: dash parses it, and shellcheck -s sh finds nothing (scripts/install.sh installs both)', () => {
    expect(spawnSync('dash', ['-n', SCRIPT], { encoding: 'utf8' }).status).toBe(0);
    const sc = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
    expect(sc.error, 'shellcheck is missing: apt-get install shellcheck').toBeUndefined();
    expect(sc.stdout, sc.stdout).toBe('');
    expect(sc.status).toBe(0);
  });

  it('ships in the npm package', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    expect(files).toContain('scripts/restore.sh');
  });

  it("atomic writes' temp names are ignored by Syncthing in the vault (never replicated half-written)", () => {
    expect(SNAPSHOT_IGNORES).toContain('/.permafrost*');
    expect(ATOMIC_TEMP_PREFIX.startsWith('.permafrost')).toBe(true);
  });
});
