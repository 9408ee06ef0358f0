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
      const { localDeviceId } = await import('../../replicate/apply.js');
      io.out(await localDeviceId(config()));
    });
};
