import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../harness/env.js';
import { processGone } from '../../harness/procs.js';
import { waitFor } from '../../harness/wait.js';

describe('a program started by startTool dies with permafrost', () => {
  it('SIGKILL of the node process (as the OOM killer does) kills the child within seconds', async () => {
    const run = path.join(REPO, 'dist/tools/run.js');
    // A real node process that starts `sleep 60` through the wrapper, prints its pid, then is killed with SIGKILL.
    const script = `import { startTool } from ${JSON.stringify(run)};
      const t = startTool({ argv: ['sleep', '60'], doing: 'waiting' }, { stdout: 'ignore' });
      console.log(t.child.pid);
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((r) => parent.once('close', (_code, sig) => r(sig)));
    expect(signal).toBe('SIGKILL');
    const child = Number.parseInt(out, 10);
    expect(child).toBeGreaterThan(0);
    try {
      await waitFor('the orphaned sleep to die', () => processGone(child), 5000);
    } finally {
      if (!processGone(child)) process.kill(child, 'SIGKILL');
    }
  });
});
