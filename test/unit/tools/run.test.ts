import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { ToolError } from '../../../src/errors.js';
import { firstError, pipelineFailure, runTool, startTool } from '../../../src/tools/run.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The rejection of `p`, which must be a ToolError. */
async function toolError(p: Promise<unknown>): Promise<ToolError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ToolError);
  return err as ToolError;
}

describe('runTool and startTool: every failure is a ToolError', () => {
  const SECRET = 'hunter2-secret-in-env';
  const env = { ...process.env, PERMAFROST_TEST_SECRET: SECRET };

  it('a program that exits 1: argv, exit status, its own reason and the stderr tail; no env secret anywhere', async () => {
    const argv = ['sh', '-c', 'echo "tool: warning: meh" >&2; echo "tool: error: disk on fire" >&2; exit 1'];
    const err = await toolError(runTool({ argv, env, doing: 'testing the wrapper' }));
    expect(err.message).toBe('sh failed while testing the wrapper: disk on fire');
    expect(err.argv).toEqual(argv);
    expect(err.exitStatus).toBe(1);
    expect(err.signal).toBeNull();
    expect(err.stderrTail).toContain('tool: error: disk on fire');
    expect(err.exitCode).toBe(1);
    expect(err.details[0]).toBe(`command: ${argv.join(' ')} (exit 1)`);
    expect(JSON.stringify([err.message, err.details, err.argv])).not.toContain(SECRET);
  });

  it('a program killed by a signal names the signal', async () => {
    const err = await toolError(runTool({ argv: ['sh', '-c', 'kill -KILL $$'], env, doing: 'testing the wrapper' }));
    expect(err.message).toBe('sh failed while testing the wrapper: killed by SIGKILL');
    expect(err.exitStatus).toBeNull();
    expect(err.signal).toBe('SIGKILL');
    expect(err.details[0]).toContain('(killed by SIGKILL)');
  });

  it('a missing program: says to install it, keeps the spawn error as cause', async () => {
    const err = await toolError(runTool({ argv: [path.join(dir, 'no-such-tool'), '--version'], env, doing: 'testing the wrapper' }));
    expect(err.message).toBe(
      `Cannot start ${path.join(dir, 'no-such-tool')} for testing the wrapper: ENOENT; check it is installed and on PATH.`,
    );
    expect(err.exitStatus).toBeNull();
    expect(err.signal).toBeNull();
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('an AbortSignal ends the program; done rejects with what it printed so far', async () => {
    const ac = new AbortController();
    const tool = startTool({
      argv: ['sh', '-c', 'echo "started" >&2; exec sleep 30'],
      env,
      doing: 'testing the wrapper',
      signal: ac.signal,
    });
    tool.stdout.resume();
    await new Promise<void>((resolve) => tool.child.stderr!.once('data', () => resolve()));
    ac.abort(new Error('shutdown'));
    const err = await toolError(tool.done);
    expect(err.message).toBe('sh was stopped while testing the wrapper.');
    expect(err.signal).toBe('SIGTERM');
    expect(err.stderrTail).toBe('started');
    expect(tool.stopped).toBe(true);
    expect((err.cause as Error).message).toBe('shutdown');
  });

  it('a timeout stops a program that hangs', async () => {
    const err = await toolError(runTool({ argv: ['sleep', '30'], doing: 'testing the wrapper' }, { timeoutMs: 100 }));
    expect(err.message).toBe('sleep was stopped while testing the wrapper.');
  });

  it('a timeout still fires when garbage is collected meanwhile (AbortSignal.timeout inside AbortSignal.any did not: nodejs/node#57736)', () => {
    // In a child node that collects garbage every 5 ms, as a busy daemon does now and then.
    const script = `
      const { runTool } = await import(${JSON.stringify(path.resolve('src/tools/run.ts'))});
      const gc = setInterval(() => globalThis.gc(), 5);
      const t0 = Date.now();
      const outcome = await runTool({ argv: ['sleep', '20'], doing: 'testing' }, { timeoutMs: 200 }).then(() => 'finished', (e) => e.message);
      clearInterval(gc);
      console.log(JSON.stringify({ outcome, ms: Date.now() - t0 }));`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const { outcome, ms } = JSON.parse(r.stdout) as { outcome: string; ms: number };
    expect(outcome).toBe('sleep was stopped while testing.');
    expect(ms).toBeLessThan(15_000);
  }, 60_000);
});

describe('streaming', () => {
  it('collects stdout (non-streaming), streams it, or writes it to a file descriptor', async () => {
    expect((await runTool({ argv: ['printf', 'a\nb'], doing: 'testing' })).stdout).toBe('a\nb');
    const streamed = startTool({ argv: ['printf', 'streamed'], doing: 'testing' });
    expect(await text(streamed.stdout)).toBe('streamed');
    await streamed.done;
    const file = path.join(dir, 'out');
    const fd = openSync(file, 'w');
    const toFd = startTool({ argv: ['printf', 'to a file'], doing: 'testing' }, { stdout: fd });
    await toFd.done;
    closeSync(fd);
    expect(readFileSync(file, 'utf8')).toBe('to a file');
  });

  it("stdout wired to another program's stdin: an OS pipe, the consumer's output is read", async () => {
    const upper = startTool({ argv: ['tr', 'a-z', 'A-Z'], doing: 'testing' }, { stdin: 'pipe' });
    const producer = startTool({ argv: ['printf', 'piped'], doing: 'testing' }, { stdout: upper.stdin! });
    expect(producer.stdout).toBeNull();
    expect(await text(upper.stdout)).toBe('PIPED');
    await Promise.all([producer.done, upper.done]);
  });

  it('fd3 carries a secret the program reads, never argv or env', async () => {
    const t = startTool({ argv: ['sh', '-c', 'read -r line <&3; echo "got $line"'], doing: 'testing' }, { fd3: 'pass word\n' });
    expect(await text(t.stdout)).toBe('got pass word\n');
    await t.done;
  });

  it('pipelineFailure: the consumer that died explains the producer it left with a broken pipe', async () => {
    const consumer = startTool(
      { argv: ['sh', '-c', 'echo "consumer: simulated failure: disk on fire" >&2; exit 3'], doing: 'consuming' },
      { stdin: 'pipe' },
    );
    const producer = startTool({ argv: ['yes'], doing: 'producing' }, { stdout: consumer.stdin! });
    consumer.stdout.resume();
    // SIGPIPE, or "Connection reset by peer" when unread bytes were left in the socket pair.
    const producerErr = await toolError(producer.done);
    expect(producerErr.signal === 'SIGPIPE' || /Connection reset by peer/.test(producerErr.stderrTail), producerErr.message).toBe(true);
    const err = (await pipelineFailure(new Error('stream ended early'), [producer, consumer])) as ToolError;
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toBe('sh failed while consuming: simulated failure: disk on fire');
    expect(err.exitStatus).toBe(3);
  });

  it('a program that exited on its own before Node noticed keeps its own failure when stopped', async () => {
    const t = startTool({ argv: ['sh', '-c', 'echo "sh: error: gave up" >&2; exit 3'], doing: 'testing' });
    t.stdout.resume();
    // Block the event loop until the process is a zombie: exited, exit not yet reported to Node.
    const stat = `/proc/${t.child.pid}/stat`;
    const deadline = Date.now() + 5000;
    while (!readFileSync(stat, 'utf8').split(') ')[1]!.startsWith('Z') && Date.now() < deadline);
    t.stop();
    const err = await toolError(t.done);
    expect(t.stopped).toBe(false);
    expect(err.exitStatus).toBe(3);
    expect(err.message).toBe('sh failed while testing: gave up');
  });

  it('pipelineFailure: programs it had to stop do not hide the stream error', async () => {
    const t = startTool({ argv: ['sleep', '30'], doing: 'testing' });
    const streamErr = new Error('ENOSPC');
    expect(await pipelineFailure(streamErr, [t])).toBe(streamErr);
    expect(t.stopped).toBe(true);
  });
});

describe('firstError', () => {
  it.each([
    [
      'pg_dump: error: connection to server failed: FATAL:  database "x" does not exist\n',
      'connection to server failed: FATAL: database "x" does not exist',
    ],
    ['pg_dump: warning: something\npg_dump: error: query failed: boom\npg_dump: detail: Query was: LOCK', 'query failed: boom'],
    // psql's own prefix names the input line and keeps PostgreSQL's two spaces after ERROR:.
    ['psql:<stdin>:3: ERROR:  division by zero\n', 'division by zero'],
    ['just a line\nlast line\n', 'last line'],
    ['', undefined],
  ])('%j → %j', (stderr, expected) => {
    expect(firstError(stderr)).toBe(expected);
  });
});
