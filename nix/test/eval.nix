# Evaluates nix/module.nix with nixpkgs' module system and the stubs, for
# test/e2e/nix-module.test.ts: the failed assertions' messages, or the rendered unit files,
# the config YAML and what the module set for users, groups, tmpfiles and PostgreSQL.
# nix-instantiate --eval --strict --json nix/test/eval.nix --argstr libPath … --argstr configuration … --argstr storeRoot …
{ libPath, configuration, storeRoot }:
let
  lib = import (/. + libPath);
  pkgs = import ./pkgs.nix { inherit lib storeRoot; };
  eval = lib.evalModules {
    modules = [ ./stubs.nix ../module.nix (/. + configuration) { _module.args.pkgs = pkgs; } ];
  };
  c = eval.config;
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  # As NixOS's systemd-lib renders a section: a list becomes one line per item, a bool true/false.
  value = v: if builtins.isBool v then lib.boolToString v else toString v;
  section = name: attrs:
    "[${name}]\n" + lib.concatStrings (lib.mapAttrsToList (k: v:
      lib.concatMapStrings (x: "${k}=${value x}\n") (if builtins.isList v then v else [ v ])) attrs);
  deps = u: lib.filterAttrs (_: v: v != [ ]) { Wants = u.wants; After = u.after; Requires = u.requires; };
  install = u: lib.optionalString (u.wantedBy != [ ]) ("\n" + section "Install" { WantedBy = u.wantedBy; });
  serviceText = u:
    section "Unit" ({ Description = u.description; } // lib.mapAttrs (_: lib.concatStringsSep " ") (deps u))
    + "\n" + section "Service" (lib.optionalAttrs (u.path != [ ]) { Environment = "PATH=${lib.makeBinPath u.path}"; } // u.serviceConfig)
    + install u;
  timerText = u: section "Unit" { Description = u.description; } + "\n" + section "Timer" u.timerConfig + install u;
in
if failed != [ ] then { failedAssertions = failed; }
else {
  failedAssertions = [ ];
  units = lib.mapAttrs' (n: u: lib.nameValuePair "${n}.service" (serviceText u)) c.systemd.services
    // lib.mapAttrs' (n: u: lib.nameValuePair "${n}.timer" (timerText u)) c.systemd.timers;
  timers = lib.mapAttrs (_: u: u.timerConfig.OnCalendar) c.systemd.timers;
  configText = c.environment.etc."permafrost/permafrost.yaml".source.text;
  users = lib.mapAttrs (_: u: { inherit (u) isSystemUser group extraGroups; }) c.users.users;
  groups = builtins.attrNames c.users.groups;
  tmpfiles = c.systemd.tmpfiles.rules;
  postgresql = { inherit (c.services.postgresql) identMap authentication; };
}
