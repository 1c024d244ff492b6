# %preun of ecr-broker ($1: 0 on erase, 1 on upgrade): on erase, stop and disable the broker.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now ecr-broker.service ecr-broker.socket >/dev/null 2>&1 || :
    fi
fi
