# %post of docker-credential-ecr ($1: 1 on install, 2 on upgrade), as the .deb's link:
# kubelet's provider is docker-credential-ecr under the name ecr-credential-provider
# (cargo-generate-rpm cannot package a symlink; %preun removes it on erase).
mkdir -p /usr/libexec/ecr-cred
ln -sfn ../../bin/docker-credential-ecr /usr/libexec/ecr-cred/ecr-credential-provider
