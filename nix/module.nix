# services.permafrost: the NixOS module. It renders `settings` (plus what it reads from
# services.mastodon and services.syncthing) to /etc/permafrost/permafrost.yaml and runs either
# `permafrost daemon` or the backup/verify service + timer pairs `permafrost systemd` generates,
# with the same hardening (test/e2e/nix-module.test.ts compares the two).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optional optionals optionalAttrs;

  cfg = config.services.permafrost;
  mastodon = config.services.mastodon;
  syncthing = config.services.syncthing;
  yaml = pkgs.formats.yaml { };
  cron = import ./cron.nix { inherit lib; };

  stateDir = "/var/lib/permafrost";
  # services.mastodon keeps uploads here (PAPERCLIP_ROOT_PATH) and writes its secrets as an env file here.
  mastodonMedia = "/var/lib/mastodon/public-system";
  mastodonSecrets = "/var/lib/mastodon/.secrets_env";
  # The schema's defaults (src/config/schema-schedule.ts), for the timers of a config that leaves them out.
  defaultBackupCron = "40 * * * *";
  defaultVerifyCron = "10 4 * * *";

  isSource = cfg.role == "source";
  user = "permafrost";
  group = "permafrost";
  withSyncthing = syncthing.enable or false;
  unitName = if cfg.daemon then "permafrost" else "permafrost-backup";

  # services.mastodon talks to its local Redis (services.redis.servers.mastodon) over a unix socket.
  localRedisSocket = mastodon.redis.createLocally && mastodon.redis.enableUnixSocket;
  mastodonRedisSocket = config.services.redis.servers.mastodon.unixSocket;
  mastodonSettings = optionalAttrs (cfg.mastodon && isSource) {
    database = {
      inherit (mastodon.database) name user;
      host = mastodon.database.host;
    }
    // optionalAttrs (mastodon.database.port != null) { inherit (mastodon.database) port; }
    # services.mastodon uses the password only for a database it does not create (peer authentication otherwise).
    // optionalAttrs (!mastodon.database.createLocally && mastodon.database.passwordFile != null) {
      # As given (not toString): a Nix path must reach the store check below as a path.
      inherit (mastodon.database) passwordFile;
    };
    redis = {
      url =
        if localRedisSocket then "unix://${mastodonRedisSocket}"
        else "redis://${mastodon.redis.host}:${toString mastodon.redis.port}";
    }
    // optionalAttrs (mastodon.redis.passwordFile != null) { inherit (mastodon.redis) passwordFile; };
    # The secrets env is mastodon's own 0600 file: systemd hands the backup a copy (LoadCredential=).
    secrets.file = "/run/credentials/${unitName}.service/mastodon-secrets";
    media.dir = mastodonMedia;
  };

  userSyncthing = cfg.settings.syncthing or { };
  # Syncthing's own folder holds config.xml with the API key (permafrost-sync-apply reads it).
  syncthingSettings = optionalAttrs withSyncthing {
    syncthing = {
      url = "http://${syncthing.guiAddress}";
      role = cfg.role;
    }
    // optionalAttrs (!(userSyncthing ? apiKeyFile)) { home = syncthing.configDir; };
  };

  # Defaults first, the admin's settings over them; nulls dropped (the schema takes absent keys, not null).
  merged = lib.recursiveUpdate (lib.recursiveUpdate ({ vault.dir = "${stateDir}/vault"; } // mastodonSettings) syncthingSettings) cfg.settings;
  finalSettings = lib.filterAttrsRecursive (_: v: v != null) merged;
  configFile = yaml.generate "permafrost.yaml" finalSettings;
  vaultDir = finalSettings.vault.dir;
  tempDir = finalSettings.vault.tempDir or null;

  schedule = finalSettings.schedule or { };
  timeZone = schedule.timezone or null;
  backupCron = schedule.backup or defaultBackupCron;
  verifyCron = schedule.verify or defaultVerifyCron;
  backupCalendar = cron.toOnCalendar backupCron timeZone;
  verifyCalendar = cron.toOnCalendar verifyCron timeZone;

  # A path string as the kernel resolves it, symlinks aside: `//` and `/./` dropped, `..` folded.
  normalisePath = s:
    let
      parts = builtins.filter (p: builtins.isString p && p != "" && p != ".") (builtins.split "/" s);
      folded = builtins.foldl' (acc: p: if p != ".." then acc ++ [ p ] else if acc == [ ] then [ ] else lib.init acc) [ ] parts;
    in
    "/" + lib.concatStringsSep "/" folded;
  # A Nix path is copied into the store when the config is rendered; a string may name the store in many spellings.
  inStore = v:
    builtins.isPath v
    || (builtins.isString v && lib.hasPrefix "/" v
      && (let n = normalisePath v; in n == builtins.storeDir || lib.hasPrefix "${builtins.storeDir}/" n));
  # Settings that name a secret: every `…File` but the signer's public key, Mastodon's secrets file,
  # Syncthing's folder (config.xml holds the API key), and secret keys given as identities.
  namesSecret = keyPath:
    let k = lib.last keyPath; in
    (lib.hasSuffix "File" k && k != "signerKeyFile") || lib.elem k [ "identity" "identities" "identityFiles" ]
    || keyPath == [ "secrets" "file" ] || keyPath == [ "syncthing" "home" ];
  # Every secret-naming value of the admin's settings, as [ { option; value; } ]. Other values are not
  # forced: those services.mastodon fills in may not evaluate when another assertion fails.
  secretValues = label: keyPath: v:
    if keyPath != [ ] && namesSecret keyPath then
      (if builtins.isList v then lib.concatLists (lib.imap0 (i: x: secretValues "${label}[${toString i}]" keyPath x) v)
       else optional (lib.isDerivation v || builtins.isPath v || builtins.isString v) { option = label; value = v; })
    else if builtins.isAttrs v then lib.concatLists (lib.mapAttrsToList (k: x: secretValues "${label}.${k}" (keyPath ++ [ k ]) x) v)
    else if builtins.isList v then lib.concatLists (lib.imap0 (i: x: secretValues "${label}[${toString i}]" keyPath x) v)
    else [ ];
  # The password files services.mastodon hands over, unless the admin's settings replace them.
  mastodonPasswordFiles = lib.concatLists (map (part:
    let v = mastodonSettings.${part}.passwordFile or null; in
    optional (v != null && !(lib.hasAttrByPath [ part "passwordFile" ] cfg.settings)) { option = "services.mastodon.${part}.passwordFile"; value = v; })
    [ "database" "redis" ]);
  storeSecrets = builtins.filter (f: lib.isDerivation f.value || inStore f.value)
    (secretValues "services.permafrost.settings" [ ] cfg.settings ++ mastodonPasswordFiles);
  storeMessage = f:
    if lib.isDerivation f.value then
      ''${f.option}: the package ${toString f.value} is in the Nix store, which every user can read; give the path of a file outside it as a string (e.g. "/run/keys/permafrost").''
    else if builtins.isPath f.value then
      ''${f.option}: the Nix path ${toString f.value} names a secret, and Nix copies it into the Nix store, which every user can read; give the path of a file outside the store as a string (e.g. "/run/keys/permafrost").''
    else
      ''${f.option}: "${f.value}" is in the Nix store (${normalisePath f.value}), which every user can read; give the path of a file outside it (e.g. "/run/keys/permafrost").'';

  # The same directives as the [Service] section of src/schedule/systemd.ts.
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ReadWritePaths = lib.unique ([ vaultDir ] ++ optional (tempDir != null) tempDir);
    ProtectHome = "read-only";
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    RestrictSUIDSGID = true;
    RestrictRealtime = true;
    RestrictNamespaces = true;
    LockPersonality = true;
    RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
    CapabilityBoundingSet = "";
    SystemCallArchitectures = "native";
    SystemCallFilter = "@system-service";
    # Not MemoryDenyWriteExecute: Node's JIT needs writable executable memory.
  };

  exec = args: lib.escapeShellArgs ([ (lib.getExe' cfg.package "permafrost") "--config" "${configFile}" ] ++ args);
  postgresql = if config.services.postgresql.enable then config.services.postgresql.package else pkgs.postgresql;
  toolPath = [ pkgs.gnupg postgresql pkgs.redis pkgs.isa-l ];
  localServices = optional (config.services.postgresql.enable && isSource) "postgresql.service"
    ++ optional (cfg.mastodon && isSource && mastodon.redis.createLocally) "redis-mastodon.service";

  # `backs`: the unit that runs backups, the only one that reads Mastodon's secrets.
  jobService = { description, serviceConfig, backs ? false }: {
    inherit description;
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ] ++ localServices;
    path = toolPath;
    serviceConfig = hardening // {
      User = user;
      Group = group;
      # SIGTERM aborts a backup or verify cleanly (nothing partial or plaintext left); give it time.
      TimeoutStopSec = 120;
      UMask = "0027";
      Nice = 10;
      IOSchedulingClass = "idle";
    }
    // optionalAttrs (backs && cfg.mastodon && isSource) { LoadCredential = [ "mastodon-secrets:${mastodonSecrets}" ]; }
    // serviceConfig;
  };

  timer = description: onCalendar: unit: {
    inherit description;
    wantedBy = [ "timers.target" ];
    timerConfig = {
      OnCalendar = onCalendar;
      # Run a missed job at boot; fire on the second, as cron would.
      Persistent = true;
      AccuracySec = "1s";
      Unit = "${unit}.service";
    };
  };

  cronAssertion = key: pattern: result: {
    assertion = cfg.daemon || result.ok;
    message = "services.permafrost.settings.${key}: cannot translate the cron pattern \"${pattern}\" into a systemd OnCalendar= expression (${result.reason or ""}); use a simpler pattern, or set services.permafrost.daemon = true instead of timers.";
  };
in
{
  options.services.permafrost = {
    enable = lib.mkEnableOption "permafrost, encrypted, replicated, restore-tested backups of a Mastodon server";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The permafrost CLI the units run.";
    };

    settings = mkOption {
      type = yaml.type;
      default = { };
      example = lib.literalExpression ''{ vault.passphraseFile = "/run/keys/permafrost-passphrase"; vault.keep = { hourly = 24; daily = 7; }; }'';
      description = ''
        permafrost's config (README, "Config reference"), rendered to /etc/permafrost/permafrost.yaml over
        what `mastodon` and services.syncthing fill in. Secrets stay paths to files as strings
        ("/run/keys/…"), never Nix paths or values: the store is world-readable.
      '';
    };

    mastodon = mkOption {
      type = types.bool;
      default = false;
      description = "Back up services.mastodon: its database, Redis, media folder and secrets.";
    };

    role = mkOption {
      type = types.enum [ "source" "receiver" ];
      default = "source";
      description = "source: the server that makes the backups; receiver: a device that holds replicas through Syncthing.";
    };

    daemon = mkOption {
      type = types.bool;
      default = cfg.role == "receiver";
      defaultText = lib.literalExpression ''config.services.permafrost.role == "receiver"'';
      description = "Run `permafrost daemon` (all schedules, the status page) instead of the backup and verify timers.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !isSource || finalSettings.vault ? passphraseFile || (finalSettings.vault.recipients or [ ]) != [ ];
        message = ''services.permafrost: a source encrypts every snapshot, so set services.permafrost.settings.vault.recipients (public key files) or settings.vault.passphraseFile (a file outside the Nix store, mode 0600, e.g. "/run/keys/permafrost-passphrase").'';
      }
      {
        assertion = !isSource || finalSettings ? database;
        message = "services.permafrost: a source backs up a database; set services.permafrost.mastodon = true (it reads services.mastodon.database) or services.permafrost.settings.database.name.";
      }
      {
        assertion = !cfg.mastodon || (mastodon.enable or false);
        message = "services.permafrost.mastodon = true reads services.mastodon, which is not enabled; enable services.mastodon or set services.permafrost.settings.database yourself.";
      }
      {
        assertion = isSource || !cfg.mastodon;
        message = ''services.permafrost: a receiver makes no backups, so mastodon = true belongs on the server; remove it or set role = "source".'';
      }
      {
        assertion = isSource || withSyncthing;
        message = "services.permafrost: a receiver holds only what Syncthing brings; enable services.syncthing on it.";
      }
      {
        assertion = isSource || cfg.daemon;
        message = "services.permafrost: the backup and verify timers need the server's database; a receiver runs the daemon (services.permafrost.daemon = true), which checks its replicas on schedule.check.";
      }
      {
        assertion = (userSyncthing.role or cfg.role) == cfg.role;
        message = "services.permafrost.settings.syncthing.role: set services.permafrost.role instead; the module renders it.";
      }
      (cronAssertion "schedule.backup" backupCron backupCalendar)
      (cronAssertion "schedule.verify" verifyCron verifyCalendar)
    ]
    ++ map (f: { assertion = false; message = storeMessage f; }) storeSecrets;

    environment.etc."permafrost/permafrost.yaml".source = configFile;

    users.users.${user} = {
      isSystemUser = true;
      inherit group;
      home = stateDir;
      # mastodon: read its media folder; the Redis server's group: its unix socket.
      extraGroups = optionals (cfg.mastodon && isSource) (
        [ mastodon.group ] ++ optional localRedisSocket config.services.redis.servers.mastodon.group
      );
    };
    users.groups.${group} = { };

    # Syncthing reads the vault on a source (and the media folder) and writes it on a receiver.
    users.users.${syncthing.user or "syncthing"} = mkIf withSyncthing {
      extraGroups = [ group ] ++ optional (cfg.mastodon && isSource) mastodon.group;
    };

    # setgid vault: snapshots stay in the permafrost group whoever writes them (permafrost or Syncthing).
    systemd.tmpfiles.rules = [
      "d ${stateDir} 0750 ${user} ${group} - -"
      "d ${vaultDir} ${if isSource then "2750" else "2770"} ${user} ${group} - -"
    ]
    ++ optional (tempDir != null) "d ${tempDir} 0700 ${user} ${group} - -";

    # Peer authentication maps the permafrost account to Mastodon's database role (and keeps Mastodon's own login).
    services.postgresql = mkIf (cfg.mastodon && isSource && mastodon.database.createLocally) {
      identMap = ''
        permafrost ${mastodon.user} ${mastodon.database.user}
        permafrost ${user} ${mastodon.database.user}
      '';
      authentication = lib.mkBefore ''
        local ${mastodon.database.name} ${mastodon.database.user} peer map=permafrost
      '';
    };

    systemd.services = lib.mkMerge [
      (mkIf cfg.daemon {
        permafrost = jobService {
          description = "permafrost daemon: scheduled backups, verifies and checks";
          backs = true;
          serviceConfig = {
            ExecStart = exec [ "daemon" ];
            Restart = "on-failure";
            RestartSec = "30s";
          };
        } // { wantedBy = [ "multi-user.target" ]; };
      })
      (mkIf (!cfg.daemon) {
        permafrost-backup = jobService {
          description = "permafrost backup: encrypted snapshot of the Mastodon server";
          backs = true;
          serviceConfig = { Type = "oneshot"; ExecStart = exec [ "backup" ]; };
        };
        permafrost-verify = jobService {
          description = "permafrost verify: test-restore of the newest snapshot into a scratch database";
          serviceConfig = { Type = "oneshot"; ExecStart = exec [ "verify" ]; };
        };
      })
      # `permafrost sync apply` rather than services.syncthing.settings: it also sets the folders'
      # ignore patterns and the receiver's versioning, which settings cannot, through the code the suite
      # tests against a real Syncthing. It runs again after syncthing-init, which may have replaced devices and folders.
      (mkIf withSyncthing {
        permafrost-sync-apply = {
          description = "permafrost sync apply: Syncthing folders and devices from the config";
          after = [ "syncthing.service" "syncthing-init.service" ];
          requires = [ "syncthing.service" ];
          wantedBy = [ "multi-user.target" "syncthing-init.service" ];
          # As root with only CAP_DAC_READ_SEARCH: it reads the API key from Syncthing's 0600 config.xml
          # and finds the secret files the config names wherever they are, and writes nothing.
          serviceConfig = hardening // {
            Type = "oneshot";
            ExecStart = exec [ "sync" "apply" ];
            ReadWritePaths = [ ];
            CapabilityBoundingSet = "CAP_DAC_READ_SEARCH";
          };
        };
      })
    ];

    systemd.timers = mkIf (!cfg.daemon) {
      permafrost-backup = timer "permafrost backup on schedule" backupCalendar.value "permafrost-backup";
      permafrost-verify = timer "permafrost verify on schedule" verifyCalendar.value "permafrost-verify";
    };
  };
}
