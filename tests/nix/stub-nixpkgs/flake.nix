# A stand-in for nixpkgs, for tests only: just enough of `lib` and `legacyPackages` to
# evaluate the project's flake.nix offline (`--override-input nixpkgs path:THIS_DIR`).
# Packages are plain attribute sets, never built; `mkShell` returns its own arguments so a
# test can read what the flake asked for. It checks the flake's logic, not nixpkgs.
{
  outputs =
    { self }:
    let
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        optional = cond: x: if cond then [ x ] else [ ];
        optionals = cond: xs: if cond then xs else [ ];
        optionalString = cond: s: if cond then s else "";
        optionalAttrs = cond: a: if cond then a else { };
        concatMapStrings = f: xs: builtins.concatStringsSep "" (map f xs);
        concatStringsSep = builtins.concatStringsSep;
        makeLibraryPath = ps: builtins.concatStringsSep ":" (map (p: "${p.outPath}/lib") ps);
      };
      fake = system: pname: {
        type = "derivation";
        inherit pname system;
        version = "0-stub";
        name = "${pname}-0-stub";
        outPath = "/stub/${system}/${pname}";
      };
      pkgsFor =
        system:
        let
          isLinux = builtins.match ".*-linux" system != null;
          tools = [
            "python311"
            "uv"
            "hadolint"
            "gnumake"
            "docker-client"
            "shellcheck"
            "ruff"
            "jq"
            "git"
            "podman"
            "zlib"
            "nixfmt-rfc-style"
            "alejandra"
          ]
          # One system without docker-buildx exercises the flake's "where nixpkgs has it".
          ++ lib.optional (system != "x86_64-darwin") "docker-buildx";
        in
        lib.genAttrs tools (fake system)
        // {
          python311Packages.pip-tools = fake system "pip-tools";
          stdenv = {
            hostPlatform = {
              inherit system isLinux;
              isDarwin = !isLinux;
            };
            inherit isLinux;
            isDarwin = !isLinux;
            cc.cc.lib = fake system "gcc-lib";
          };
          mkShell = args: {
            type = "derivation";
            name = args.name or "nix-shell";
            outPath = "/stub/${system}/shell";
            stubMkShellArgs = args;
          };
        };
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
        "i686-linux"
      ] pkgsFor;
    };
}
