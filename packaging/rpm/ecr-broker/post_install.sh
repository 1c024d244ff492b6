# %post of ecr-broker ($1: 1 on install, 2 on upgrade). Same steps as the .deb's postinst.
# The ecr-broker user and group, before the socket (SocketGroup=ecr-broker) is started.
if [ -x /usr/bin/systemd-sysusers ]; then
    /usr/bin/systemd-sysusers /usr/lib/sysusers.d/ecr-broker.conf || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        # Distribution presets decide whether a new unit is enabled (as %systemd_post does).
        systemctl --no-reload preset ecr-broker.socket ecr-broker.service >/dev/null 2>&1 || :
    fi
fi
