// The step of the GitHub Action in ../action.yml: find (or build) docker-credential-ecr, then
// run `docker-credential-ecr login --github-actions` with the step's inputs. The program
// itself masks, writes $GITHUB_OUTPUT and $GITHUB_ENV and records what it changed; this script
// only translates inputs to arguments, puts the program on the job's PATH and leaves the post
// step what it needs. Node's own modules only: nothing to install or bundle.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BIN = 'docker-credential-ecr';

// As @actions/core's getInput: INPUT_<NAME>, spaces to _, upper case (hyphens stay).
function input(name) {
  return (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '').trim();
}

function appendRunnerFile(variable, line) {
  const file = process.env[variable];
  if (!file) throw new Error(`$${variable} is not set: this runs only as a GitHub Actions step`);
  fs.appendFileSync(file, `${line}\n`, { mode: 0o600 });
}

function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch (_) { /* not here */ }
  }
  return null;
}

// docker-credential-ecr on PATH, else in ~/.ecr-cred/bin (cache that folder between runs),
// else built there from this action's own source with cargo. Its folder goes on the job's PATH
// so docker finds the helper in later steps.
function findOrInstall() {
  const found = onPath(BIN);
  if (found) return found;
  const root = path.join(os.homedir(), '.ecr-cred');
  const bin = path.join(root, 'bin', BIN);
  if (!fs.existsSync(bin)) {
    console.log(`${BIN} is not installed: building it from ${path.join(__dirname, '..')} (cargo install --locked; cache ~/.ecr-cred to skip this)`);
    const r = spawnSync('cargo', ['install', '--locked', '--root', root, '--path', path.join(__dirname, '..', 'helper')], { stdio: 'inherit' });
    if (r.error || r.status !== 0) throw new Error(`could not build ${BIN}: ${r.error ? r.error.message : `cargo exited ${r.status}`}`);
  }
  appendRunnerFile('GITHUB_PATH', path.dirname(bin));
  return bin;
}

function loginArgs() {
  const args = ['login', '--github-actions'];
  const type = (input('registry-type') || 'private').toLowerCase();
  if (type !== 'private' && type !== 'public') {
    throw new Error("Invalid input for 'registry-type', possible options are [private, public]");
  }
  if (type === 'public') {
    args.push('public');
  } else if (input('registries')) {
    args.push(input('registries'));
  }
  if ((input('mask-password') || 'true').toLowerCase() === 'false') args.push('--no-mask');
  if (input('aws-region')) args.push('--region', input('aws-region'));
  if (input('role-to-assume')) {
    args.push('--role-to-assume', input('role-to-assume'));
    if (input('role-session-name')) args.push('--role-session-name', input('role-session-name'));
    if (input('role-duration-seconds')) args.push('--role-duration', input('role-duration-seconds'));
  }
  return args;
}

function main() {
  try {
    const args = loginArgs();
    const bin = findOrInstall();
    if (input('aws-region')) {
      appendRunnerFile('GITHUB_ENV', `AWS_REGION=${input('aws-region')}`);
      appendRunnerFile('GITHUB_ENV', `AWS_DEFAULT_REGION=${input('aws-region')}`);
    }
    // The post step logs out unless skipped; it finds the record login keeps in $RUNNER_TEMP.
    if ((input('skip-logout') || 'false').toLowerCase() !== 'true') {
      appendRunnerFile('GITHUB_STATE', `bin=${bin}`);
    }
    const r = spawnSync(bin, args, { stdio: 'inherit' });
    if (r.error) throw r.error;
    if (r.status !== 0) process.exitCode = r.status || 1;
  } catch (e) {
    console.log(`::error::${e.message}`);
    process.exitCode = 1;
  }
}

main();
