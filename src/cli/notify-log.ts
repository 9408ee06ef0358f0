import type { NotifyLog } from '../notify/alerts.js';
import type { Io } from './run.js';

/** Alert delivery problems as warning lines on stderr (the run's own output stays clean for --json); a bug in alerting as an error line with its stack. */
export function cliNotifyLog(io: Io): NotifyLog {
  return (level, msg, fields) => {
    if (level === 'info') return;
    const attempt =
      typeof fields.attempt === 'number' ? `attempt ${fields.attempt}${typeof fields.of === 'number' ? `/${fields.of}` : ''}` : '';
    const extra = [attempt, typeof fields.error === 'string' ? fields.error : ''].filter(Boolean).join(': ');
    io.err(`${level === 'error' ? 'error' : 'warning'}: ${msg}${extra ? ` (${extra})` : ''}`);
    if (level === 'error' && typeof fields.stack === 'string') io.err(fields.stack);
  };
}
