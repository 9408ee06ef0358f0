import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { commentedSections, guessSyncthingHome } from '../../../src/ops/init-sections.js';
import { DEFAULT_BACKUP_CRON, DEFAULT_CHECK_CRON, DEFAULT_VERIFY_CRON } from '../../../src/config/schema-schedule.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-initsec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The sections of the text, each uncommented as the admin is told to ("remove the leading # "), parsed as YAML. */
function uncommented(text: string): Record<string, unknown> {
  const blocks = text.split('\n\n').filter((b) => /^# [a-z]+:$/m.test(b));
  const yaml = blocks
    .map((b) =>
      b
        .split('\n')
        .filter((l) => !/^# [A-Z(`]/.test(l) && l !== '')
        .map((l) => l.replace(/^# /, ''))
        .join('\n'),
    )
    .join('\n');
  return parse(yaml) as Record<string, unknown>;
}

describe('guessSyncthingHome', () => {
  it('the newer place when neither holds a config.xml, the older one when only it does, the newer when both do', () => {
    const home = mkdtempSync(path.join(dir, 'home-'));
    expect(guessSyncthingHome(home)).toBe(path.join(home, '.local/state/syncthing'));
    mkdirSync(path.join(home, '.config/syncthing'), { recursive: true });
    expect(guessSyncthingHome(home)).toBe(path.join(home, '.local/state/syncthing'));
    writeFileSync(path.join(home, '.config/syncthing/config.xml'), '<configuration/>');
    expect(guessSyncthingHome(home)).toBe(path.join(home, '.config/syncthing'));
    mkdirSync(path.join(home, '.local/state/syncthing'), { recursive: true });
    writeFileSync(path.join(home, '.local/state/syncthing/config.xml'), '<configuration/>');
    expect(guessSyncthingHome(home)).toBe(path.join(home, '.local/state/syncthing'));
  });
});

describe('commentedSections (the optional sections init writes, commented out)', () => {
  const source = commentedSections({ role: 'source', configDir: '/etc/permafrost', syncthingHome: '/var/lib/st' });

  it('every line is a comment: the config means nothing more until the admin uncomments a section', () => {
    expect(source.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
    expect(parse(source)).toBeNull();
  });

  it('uncommented as told, each section is YAML with the defaults and the paths of this host', () => {
    const y = uncommented(source) as {
      schedule: Record<string, string>;
      notify: { webhook: { url: string } };
      web: { listen: string };
      syncthing: { home: string; role: string; devices: unknown[]; staleAfter: string };
    };
    expect(Object.keys(y)).toEqual(['schedule', 'notify', 'web', 'syncthing']);
    expect(y.schedule).toEqual({ backup: DEFAULT_BACKUP_CRON, verify: DEFAULT_VERIFY_CRON, check: DEFAULT_CHECK_CRON });
    expect(y.notify.webhook.url).toMatch(/^https:/);
    expect(y.web.listen).toBe('127.0.0.1:9580');
    expect(y.syncthing).toMatchObject({ home: '/var/lib/st', role: 'source', devices: [], staleAfter: '2h' });
    expect(source).toContain('tokenFile: /etc/permafrost/bot.token');
    expect(source).toContain('tokenFile: /etc/permafrost/web.token');
  });

  it('a backup device gets no backup or verify schedule (it makes none) and the dead-man alarm wording', () => {
    const device = commentedSections({ role: 'receiver', configDir: '/c', syncthingHome: '/s' });
    expect((uncommented(device) as { schedule: unknown }).schedule).toEqual({ check: DEFAULT_CHECK_CRON });
    expect(device).toContain('dead-man alarm');
    expect(source).not.toContain('dead-man alarm');
  });

  it('sections the config already has are not repeated', () => {
    const rest = commentedSections({ role: 'source', configDir: '/c', syncthingHome: '/s', skip: ['notify', 'syncthing'] });
    expect(Object.keys(uncommented(rest))).toEqual(['schedule', 'web']);
    expect(rest).not.toMatch(/^# (notify|syncthing):$/m);
  });
});
