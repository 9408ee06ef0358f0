import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { DEFAULT_BACKUP_CRON, DEFAULT_CHECK_CRON, DEFAULT_VERIFY_CRON } from '../config/schema-schedule.js';

/**
 * Syncthing's folder (the API key is read from its config.xml): the first of the usual places that
 * holds a config.xml for the user running init (Syncthing ≥ 1.27 uses ~/.local/state/syncthing,
 * older ones ~/.config/syncthing), else the newer place.
 */
export function guessSyncthingHome(home = homedir()): string {
  const candidates = [path.join(home, '.local/state/syncthing'), path.join(home, '.config/syncthing')];
  return candidates.find((c) => existsSync(path.join(c, 'config.xml'))) ?? candidates[0]!;
}

/** The config's optional sections, commented out: an admin removes the leading `# ` of a section's lines to use it. */
export function commentedSections(opts: {
  role: 'source' | 'receiver';
  /** The config's folder, for the example token files. */
  configDir: string;
  syncthingHome: string;
  /** The sections the config already has, which are not repeated. */
  skip?: readonly string[];
}): string {
  const dir = opts.configDir;
  const device = opts.role === 'receiver';
  const sections: Record<string, string[]> = {
    schedule: [
      '# When `permafrost daemon` (e.g. `permafrost systemd --daemon --install`) runs each job, as cron patterns.',
      '# schedule:',
      ...(device
        ? []
        : [
            `#   backup: "${DEFAULT_BACKUP_CRON}"     # a snapshot every hour at minute 40`,
            `#   verify: "${DEFAULT_VERIFY_CRON}"      # a test-restore of the newest snapshot, daily at 04:10`,
          ]),
      `#   check: "${DEFAULT_CHECK_CRON}"      # every snapshot against its manifest (SHA-256, no passphrase), hourly at minute 25`,
      "#   # timezone: Europe/Berlin   # default: the system's",
    ],
    notify: [
      device
        ? '# Alerts, e.g. the dead-man alarm: no new snapshot from the server within syncthing.staleAfter.'
        : '# Alerts: a failed backup, verify or check, a device that falls behind. Any number of channels at once.',
      '# notify:',
      '#   webhook:',
      '#     url: https://alerts.example.org/hook      # receives each alert as a JSON POST',
      '#   # ping:',
      '#   #   url: https://hc-ping.com/YOUR-UUID      # healthchecks.io style: the URL on success, URL/fail on failure',
      '#   # mastodon:                                  # a direct message from a bot account',
      '#   #   server: https://example.social',
      `#   #   tokenFile: ${path.join(dir, 'bot.token')}   # a 0600 file whose first line is the bot's access token`,
      '#   #   to: "@admin"',
    ],
    web: [
      '# The status page, /metrics and /api/status.json, served by `permafrost daemon`.',
      '# web:',
      '#   listen: 127.0.0.1:9580   # host:port; anything but loopback requires tokenFile',
      `#   # tokenFile: ${path.join(dir, 'web.token')}   # a 0600 file whose first line is the bearer token the page asks for`,
    ],
    syncthing: [
      '# Replication to backup devices through Syncthing; `permafrost sync apply` sets Syncthing up from it.',
      '# syncthing:',
      "#   url: http://127.0.0.1:8384   # Syncthing's GUI/REST address, or the path of its unix socket",
      `#   home: ${opts.syncthingHome}   # Syncthing's folder, whose config.xml holds the API key (or apiKeyFile: a 0600 file holding it)`,
      '#   role: source   # this server sends; each device has role: receiver',
      '#   devices: []    # each device, e.g. - { name: nas, id: "<what `permafrost device-id` prints there>" }',
      "#   staleAfter: 2h   # status fails when a device's newest snapshot is older",
    ],
  };
  const chosen = Object.entries(sections).filter(([name]) => !(opts.skip ?? []).includes(name));
  return [
    '',
    '# Optional sections: to use one, remove the leading "# " of its lines from "# <name>:" down to the next blank line.',
    '# The values shown are the defaults; `permafrost doctor` checks the result.',
    ...chosen.map(([, lines]) => ['', ...lines].join('\n')),
    '',
  ].join('\n');
}
