# A stub `pkgs`: only what nix/module.nix uses. Packages are folders under `storeRoot` (the test
# puts a real `permafrost` there, so systemd-analyze can check ExecStart=); files made with
# writeText keep their text for the test to read.
{ lib, storeRoot }:
let
  package = name: { type = "derivation"; inherit name; outPath = "${storeRoot}/${name}"; meta.mainProgram = name; };
  writeText = name: text: package name // { inherit text; };
  yamlValue = with lib.types; nullOr (oneOf [ bool int float str path (attrsOf yamlValue) (listOf yamlValue) ]) // {
    description = "YAML value";
  };
in
{
  inherit writeText;
  writeShellScript = name: text: writeText name "#!/bin/sh\n${text}";
  # The module calls it only for its default package (nix/package.nix, which needs nixpkgs).
  callPackage = _fn: _args: package "permafrost";
  # JSON is YAML; nixpkgs' formats.yaml writes the same values through remarshal.
  formats.yaml = _: {
    type = lib.types.attrsOf yamlValue;
    generate = name: value: writeText name (builtins.toJSON value);
  };
  gnupg = package "gnupg";
  postgresql = package "postgresql";
  syncthing = package "syncthing";
  redis = package "redis";
  isa-l = package "isa-l";
  nodejs = package "nodejs";
}
