# %postun of ecr-broker ($1: 0 on erase, 1 on upgrade): restart a running broker on upgrade
# (its state file keeps the tokens). The ecr-broker user stays, as with every sysusers user.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart ecr-broker.service >/dev/null 2>&1 || :
    fi
fi
