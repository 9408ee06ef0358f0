# The permafrost CLI as a Nix package (buildNpmPackage). Not built in this repository's CI, which
# has no nixpkgs: the first `nix-build` prints the real npmDepsHash to put below (it follows
# package-lock.json: redo it after every change there).
{ lib, buildNpmPackage, nodejs, gnupg, postgresql, redis, isa-l }:
buildNpmPackage {
  pname = "permafrost";
  version = (lib.importJSON ../package.json).version;
  src = lib.cleanSource ./..;
  inherit nodejs;
  npmDepsHash = lib.fakeHash;
  # `npm run build` (tsc, then the esbuild bundle) makes dist/; the bin entry dist/bin/permafrost.js
  # becomes $out/bin/permafrost.
  npmBuildScript = "build";
  # The install phase asks `npm pack --dry-run` which files to copy (package.json `files`: dist/ and
  # scripts/restore.sh, which runbook.ts copies into every vault); without this flag that dry run
  # would run `prepare` (tsc) a second time. devDependencies are pruned afterwards: everything src/
  # imports is in `dependencies` (test/unit/package-deps.test.ts).
  npmPackFlags = [ "--ignore-scripts" ];
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
