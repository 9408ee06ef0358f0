import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { UserError } from '../../../src/errors.js';
import { nextSteps, runRestore, type RestoreOptions } from '../../../src/ops/restore.js';
import { runContext } from '../../../src/run-context.js';
import { makeWorkspace } from '../../harness/env.js';

describe('restore next steps', () => {
  it('names stopping services, putting files back and the tootctl re-fetch of the skipped media cache', () => {
    const steps = nextSteps({ database: 'mastodon_production', redis: '/root/dump.rdb', secrets: '/root/env', snapshot: 'S' }).join('\n');
    expect(steps).toMatch(/systemctl stop mastodon-web/);
    expect(steps).toMatch(/\/root\/dump\.rdb/);
    expect(steps).toMatch(/\/root\/env .*\.env\.production/);
    expect(steps).toMatch(/tootctl accounts refresh --all/);
    expect(steps).toMatch(/tootctl media refresh/);
  });

  it('without a database restore it says how to do one, without Redis it says to rebuild feeds', () => {
    const steps = nextSteps({ database: null, redis: null, secrets: null, snapshot: 'S1' }).join('\n');
    expect(steps).toMatch(/permafrost restore S1 --database/);
    expect(steps).toMatch(/tootctl feeds build/);
  });

  it('stop first and start last; the secrets and media steps follow what was restored', () => {
    const none = nextSteps({ database: 'db', redis: null, secrets: null, snapshot: 'S' });
    expect(none[0]).toMatch(/^Stop Mastodon first/);
    expect(none.at(-1)).toMatch(/^Start Mastodon/);
    expect(none.join('\n')).toMatch(/No secrets part was restored: bring \.env\.production back from your own copy/);
    expect(none.join('\n')).toMatch(/permafrost restore --media DIR --media-from FOLDER/);
    const media = nextSteps({ database: 'db', redis: null, secrets: null, media: '/srv/system', snapshot: 'S' }).join('\n');
    expect(media).toMatch(/Media: move \/srv\/system to \/home\/mastodon\/live\/public\/system/);
  });
});

// The decisions runRestore makes before it reads any snapshot: a backup device's config (vault only,
// no database), an empty vault. Each refusal is exit 2 and leaves the vault and destinations as they were.
describe('runRestore refuses a request that cannot work before reading the vault', () => {
  const ws = makeWorkspace(null, '');
  afterAll(() => ws.cleanup());
  const config = (): Config => loadConfig(ws.configFile);
  const refusal = (opts: Partial<RestoreOptions>): Promise<unknown> =>
    runRestore(config(), runContext(), { snapshot: 'latest', ...opts }).then(
      () => null,
      (e: unknown) => e,
    );

  it.each([
    [{ role: 'app' }, '--role NAME goes with --no-owner: pass both to give every object to that role.'],
    [{ dropPrevious: true }, '--drop-previous goes with --force: pass both to replace and drop the previous database.'],
    [{ media: '/tmp/x' }, "--media DIR needs a copy to restore from: pass --media-from FOLDER (e.g. the device's Syncthing media folder)."],
  ] as const)('%j', async (opts, message) => {
    const err = await refusal(opts);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(message);
  });

  it('destinations: a missing folder, a folder given for a file, the same file twice, a non-empty media folder without --force', async () => {
    const out = path.join(ws.dir, 'out');
    mkdirSync(path.join(out, 'system'), { recursive: true });
    writeFileSync(path.join(out, 'system', 'kept'), 'x');
    const from = path.join(ws.dir, 'media-copy');
    mkdirSync(from);
    const cases: [Partial<RestoreOptions>, string][] = [
      [
        { redis: path.join(ws.dir, 'nope', 'dump.rdb') },
        `--redis: folder ${path.join(ws.dir, 'nope')} does not exist; create it or choose another path.`,
      ],
      [{ secrets: out }, `--secrets: ${out} is a folder; give the path of a file.`],
      [{ redis: path.join(out, 'f'), secrets: path.join(out, 'f') }, '--redis and --secrets name the same file; give each its own path.'],
      [
        { mediaFrom: path.join(ws.dir, 'no-copy') },
        `--media-from: folder ${path.join(ws.dir, 'no-copy')} does not exist; point it at the media copy (e.g. the device's Syncthing folder).`,
      ],
      [
        { media: path.join(out, 'system'), mediaFrom: from },
        `--media: ${path.join(out, 'system')} is not empty; choose a new folder, move it away, or pass --force to replace it.`,
      ],
    ];
    for (const [opts, message] of cases) {
      const err = await refusal(opts);
      expect(err, JSON.stringify(opts)).toBeInstanceOf(UserError);
      expect((err as Error).message).toBe(message);
    }
    expect(readdirSync(path.join(out, 'system'))).toEqual(['kept']);
  });

  it('an empty vault: no snapshot yet, run backup first (exit 2)', async () => {
    const err = await refusal({ redis: path.join(ws.dir, 'dump.rdb') });
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`No snapshot in ${ws.vault} yet: run \`permafrost backup\` first.`);
  });
});
