import { examples, type RegisterCommand } from '../context.js';

export const registerDeviceId: RegisterCommand = (program, { io, config }) => {
  program
    .command('device-id')
    .description("Print this machine's Syncthing device ID, to paste into the other side's syncthing.devices.")
    .addHelpText(
      'after',
      examples([
        'permafrost device-id                     # on the server and on each backup device',
        "# then list each ID in the other side's config and run `permafrost sync apply` on both",
      ]),
    )
    .action(async () => {
      const [{ localDeviceId }, { readSyncthingKey }] = await Promise.all([
        import('../../replicate/apply.js'),
        import('../../ops/secrets.js'),
      ]);
      const cfg = config();
      io.out(await localDeviceId(cfg, readSyncthingKey(cfg)));
    });
};
