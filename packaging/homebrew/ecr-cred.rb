# Homebrew formula for ecr-cred: docker-credential-ecr and ecr-broker, built from source.
# Put it in a tap (e.g. ecr-cred/homebrew-tap/Formula/ecr-cred.rb), then
#   brew install --HEAD ecr-cred/tap/ecr-cred
#   brew services start ecr-cred
# On a release, add `url "https://github.com/ecr-cred/ecr-cred/archive/refs/tags/vX.Y.Z.tar.gz"`
# and its `sha256` above `head`, and the formula installs that version by default.
class EcrCred < Formula
  desc "Amazon ECR credential helper, kubelet credential provider and token broker"
  homepage "https://github.com/ecr-cred/ecr-cred"
  license "Apache-2.0"
  head "https://github.com/ecr-cred/ecr-cred.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args(path: "helper")
    system "cargo", "install", *std_cargo_args(path: "daemon")
    bin.install_symlink "docker-credential-ecr" => "ecr-credential-provider"
    # Homebrew keeps an edited etc file and installs the new one beside it as .default.
    (etc/"ecr-broker").install "packaging/config.toml"
    pkgshare.install "packaging/kubernetes/credential-provider-config.yaml"
    doc.install "docs/install.md"
    # Shell completions and man pages, printed by the binaries themselves.
    generate_completions_from_executable(bin/"docker-credential-ecr", "completions")
    generate_completions_from_executable(bin/"ecr-broker", "--completions")
    (man1/"docker-credential-ecr.1").write Utils.safe_popen_read(bin/"docker-credential-ecr", "man")
    (man1/"ecr-broker.1").write Utils.safe_popen_read(bin/"ecr-broker", "--man")
  end

  def caveats
    <<~EOS
      For docker to use the helper for ECR registries, add to ~/.docker/config.json:
        "credHelpers": { "<account>.dkr.ecr.<region>.amazonaws.com": "ecr" }
      The broker service listens on ~/Library/Caches/ecr-broker/broker.sock; tell the helper:
        export ECR_BROKER_SOCKET="$HOME/Library/Caches/ecr-broker/broker.sock"
      The helper and a user broker read ~/.config/ecr-cred/config.toml (a profile or role per
        registry; example: #{etc}/ecr-broker/config.toml). A user broker still reads the older
        ~/.config/ecr-broker/config.toml while the new file does not exist.
    EOS
  end

  service do
    run [opt_bin/"ecr-broker", "--user", "--socket", "#{Dir.home}/Library/Caches/ecr-broker/broker.sock"]
    keep_alive successful_exit: false
    process_type :background
    environment_variables ECR_LOG: "info"
    log_path var/"log/ecr-broker.log"
    error_log_path var/"log/ecr-broker.log"
  end

  test do
    assert_match "docker-credential-ecr", shell_output("#{bin}/docker-credential-ecr version")
    assert_match "credentials not found in native keychain",
                 pipe_output("#{bin}/docker-credential-ecr get", "docker.io", 1)
    (testpath/"config.toml").write "prefetch = []\n"
    assert_match "ok", shell_output("#{bin}/ecr-broker --check-config --config #{testpath}/config.toml")
  end
end
