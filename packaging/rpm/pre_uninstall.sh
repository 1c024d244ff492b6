# %preun of ecr-cred ($1: 0 on erase, 1 on upgrade): on erase, stop and disable the broker
# and remove the provider link %post made.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now ecr-broker.service ecr-broker.socket >/dev/null 2>&1 || :
    fi
    rm -f /usr/libexec/ecr-cred/ecr-credential-provider
    rmdir /usr/libexec/ecr-cred 2>/dev/null || :
fi
