import { examples, type RegisterCommand } from '../context.js';
import { registerOffsitePush } from './offsite-push.js';

export const registerOffsite: RegisterCommand = (program, ctx) => {
  const offsite = program
    .command('offsite')
    .description('Copies of the snapshots in S3-compatible buckets (the offsite: section; docs/offsite.md).')
    .addHelpText('after', examples(['permafrost offsite push', 'permafrost offsite push all --target b2']));

  registerOffsitePush(offsite, ctx);
};
