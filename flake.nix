{
  description = "grocery-ml-containers: pinned host tools and the project's .venv (`nix develop`)";

  # nixpkgs is pinned by flake.lock (the last nixos-25.05 revision); `nix flake update` moves it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Host tools only: the Python dependencies come from requirements/dev.txt into .venv,
      # exactly as `make venv` installs them without Nix.
      toolsFor =
        pkgs:
        let
          isLinux = pkgs.stdenv.hostPlatform.isLinux;
        in
        [
          pkgs.python311
          pkgs.uv
          pkgs.python311Packages.pip-tools
          pkgs.hadolint
          pkgs.gnumake
          pkgs.docker-client
          pkgs.shellcheck
          pkgs.ruff
          pkgs.jq
          pkgs.git
        ]
        ++ lib.optional (pkgs ? docker-buildx) pkgs.docker-buildx
        ++ lib.optional isLinux pkgs.podman;

      # Printed on entry, one line per tool; a tool that is absent prints nothing.
      versionCommands = [
        "python3.11 --version"
        "uv --version"
        "pip-compile --version"
        "hadolint --version"
        "make --version | head -n 1"
        "docker --version"
        "docker buildx version"
        "shellcheck --version | sed -n 2p"
        "ruff --version"
        "jq --version"
        "git --version"
        "podman --version"
      ];
    in
    {
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell (
          {
            name = "grocery-ml-containers";
            packages = toolsFor pkgs;
            # The Makefile's interpreter: `make venv` creates .venv with it.
            PYTHON = "python3.11";
            shellHook = ''
              echo ">> grocery-ml-containers dev shell: pinned host tools" >&2
              ${lib.concatMapStrings (cmd: "( ${cmd} ) 2>/dev/null | sed 's/^/   /' >&2 || true\n") versionCommands}
              # The same .venv as `make venv` without Nix (requirements/dev.txt, hash-checked).
              if [ ! -f requirements/dev.txt ]; then
                echo "warning: run nix develop from the repository root to get .venv" >&2
              elif make --no-print-directory venv >&2; then
                source .venv/bin/activate
                echo ">> using $VIRTUAL_ENV ($(python --version))" >&2
              else
                echo "warning: make venv failed: .venv not activated (the locks are for Linux x86_64)" >&2
              fi
            '';
          }
          # PyPI wheels (torch, numpy) load libstdc++ and zlib, which Nix's Python cannot find.
          // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
            LD_LIBRARY_PATH = lib.makeLibraryPath [
              pkgs.stdenv.cc.cc.lib
              pkgs.zlib
            ];
          }
        );
      });

      # `nix fmt`
      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);

      # `nix flake check` builds the dev shell on each system (every tool must resolve).
      checks = forAllSystems (pkgs: {
        devshell = self.devShells.${pkgs.stdenv.hostPlatform.system}.default;
      });
    };
}
