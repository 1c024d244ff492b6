# %preun of docker-credential-ecr ($1: 0 on erase, 1 on upgrade): on erase, remove the
# provider link %post made.
if [ "$1" -eq 0 ]; then
    rm -f /usr/libexec/ecr-cred/ecr-credential-provider
    rmdir /usr/libexec/ecr-cred 2>/dev/null || :
fi
