import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function readPackageVersion(): string {
  for (const p of ['../../package.json', '../package.json']) {
    try {
      return (require(p) as { version: string }).version;
    } catch {
      /* try the next layout (dist/src or src) */
    }
  }
  return '0.0.0';
}

/** The package version from package.json, read once: the code identity of this release. */
export const PACKAGE_VERSION: string = readPackageVersion();
