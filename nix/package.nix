# The permafrost CLI as a Nix package (buildNpmPackage). Not built in this repository's CI, which
# has no nixpkgs: the first `nix-build` prints the real npmDepsHash to put below.
{ lib, buildNpmPackage, nodejs, gnupg, postgresql, redis, isa-l }:
buildNpmPackage {
  pname = "permafrost";
  version = (lib.importJSON ../package.json).version;
  src = lib.cleanSource ./..;
  inherit nodejs;
  npmDepsHash = lib.fakeHash;
  # `npm run build` (tsc) makes dist/; the bin entry dist/cli/main.js becomes $out/bin/permafrost.
  npmBuildScript = "build";
  # The CLI finds pg_dump, gpg, redis-cli and igzip on PATH; the module adds them to its units' PATH,
  # these are for running `permafrost` by hand.
  propagatedBuildInputs = [ gnupg postgresql redis isa-l ];
  meta = {
    description = "Encrypted, replicated, restore-tested backups for self-hosted Mastodon servers";
    license = lib.licenses.agpl3Plus;
    mainProgram = "permafrost";
    platforms = lib.platforms.linux;
  };
}
