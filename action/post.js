// The post step of the GitHub Action in ../action.yml (runs at the end of the job, also after
// a failure): `docker-credential-ecr logout` takes out of docker's and containers' config
// exactly what the login step added. Nothing to do when the login step was told skip-logout.
'use strict';
const { spawnSync } = require('node:child_process');

const bin = (process.env.STATE_bin || '').trim();
if (bin) {
  const r = spawnSync(bin, ['logout'], { stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    console.log(`::error::logout failed: ${r.error ? r.error.message : `exit ${r.status}`}`);
    process.exitCode = 1;
  }
}
