import type { NotifyLog } from '../notify/alerts.js';
import type { Io } from './run.js';

/** Alert delivery problems as warning lines on stderr (the run's own output stays clean for --json). */
export function cliNotifyLog(io: Io): NotifyLog {
  return (level, msg, fields) => {
    if (level !== 'warn') return;
    const attempt = typeof fields.attempt === 'number' ? `attempt ${fields.attempt}${typeof fields.of === 'number' ? `/${fields.of}` : ''}` : '';
    const extra = [attempt, typeof fields.error === 'string' ? fields.error : ''].filter(Boolean).join(': ');
    io.err(`warning: ${msg}${extra ? ` (${extra})` : ''}`);
  };
}
