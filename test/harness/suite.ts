import { afterAll, beforeAll } from 'vitest';
import { ClusterFixture } from './env.js';

/**
 * One PostgreSQL cluster for the calling test file (some tests stop the server, which must not hit
 * other files): the databases `dbs`, loaded with the Mastodon-shaped fixture, are created before
 * the file's tests and the cluster is destroyed after them. Call at the top level of a test file.
 */
export function clusterPerFile(...dbs: string[]): ClusterFixture {
  const cluster = new ClusterFixture();
  beforeAll(() => {
    for (const db of dbs) cluster.createDb(db);
  });
  afterAll(() => cluster.destroy());
  return cluster;
}
