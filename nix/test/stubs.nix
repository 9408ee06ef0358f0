# Declarations of the NixOS options services.permafrost sets or reads, with NixOS's defaults, so
# lib.evalModules can evaluate nix/module.nix without nixpkgs (test/e2e/nix-module.test.ts).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
  str = opt types.str;
  bool = opt types.bool;
  strs = opt (types.listOf types.str) [ ];
  unitValue = types.oneOf [ types.bool types.int types.str (types.listOf (types.oneOf [ types.int types.str ])) ];
  service = types.submodule {
    options = {
      description = str "";
      wants = strs;
      after = strs;
      requires = strs;
      wantedBy = strs;
      path = opt (types.listOf types.package) [ ];
      serviceConfig = opt (types.attrsOf unitValue) { };
    };
  };
  timer = types.submodule {
    options = {
      description = str "";
      wantedBy = strs;
      timerConfig = opt (types.attrsOf unitValue) { };
    };
  };
in
{
  options = {
    assertions = opt (types.listOf types.unspecified) [ ];
    warnings = strs;
    environment.etc = opt (types.attrsOf (types.submodule { options.source = opt types.unspecified null; })) { };
    users.users = opt (types.attrsOf (types.submodule {
      options = {
        isSystemUser = bool false;
        group = str "";
        home = str "/var/empty";
        extraGroups = strs;
      };
    })) { };
    users.groups = opt (types.attrsOf (types.submodule { })) { };
    systemd.tmpfiles.rules = strs;
    systemd.services = opt (types.attrsOf service) { };
    systemd.timers = opt (types.attrsOf timer) { };

    services.postgresql = {
      enable = bool false;
      package = opt types.package pkgs.postgresql;
      identMap = opt types.lines "";
      authentication = opt types.lines "";
    };
    services.redis.servers = opt (types.attrsOf (types.submodule ({ name, ... }: {
      options = {
        unixSocket = str "/run/redis-${name}/redis.sock";
        group = str "redis-${name}";
      };
    }))) { };
    services.mastodon = {
      enable = bool false;
      user = str "mastodon";
      group = str "mastodon";
      database = {
        createLocally = bool true;
        host = str "/run/postgresql";
        port = opt (types.nullOr types.port) null;
        name = str "mastodon";
        user = str "mastodon";
        passwordFile = opt (types.nullOr types.path) "/var/lib/mastodon/secrets/db-password";
      };
      redis = {
        createLocally = bool true;
        host = str "127.0.0.1";
        port = opt types.port 31637;
        passwordFile = opt (types.nullOr types.path) null;
        enableUnixSocket = bool true;
      };
    };
    services.syncthing = {
      enable = bool false;
      user = str "syncthing";
      group = str "syncthing";
      guiAddress = str "127.0.0.1:8384";
      configDir = str "/var/lib/syncthing/.config/syncthing";
    };
  };
  # As services.mastodon does for a local Redis.
  config.services.redis.servers = lib.mkIf (config.services.mastodon.enable && config.services.mastodon.redis.createLocally) {
    mastodon = { };
  };
}
