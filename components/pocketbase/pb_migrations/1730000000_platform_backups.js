/// <reference path="../pb_data/types.d.ts" />
// Daily backups (C7) from the environment the platform sets: the cron, how many to keep, and an
// S3-compatible bucket when one is configured (its server-side encryption keeps them encrypted, S4).
migrate((app) => {
  const settings = app.settings();
  settings.backups.cron = $os.getenv("PB_BACKUP_CRON") || "0 3 * * *";
  settings.backups.cronMaxKeep = parseInt($os.getenv("PB_BACKUP_MAX_KEEP") || "7", 10);
  const bucket = $os.getenv("PB_BACKUP_S3_BUCKET");
  if (bucket) {
    settings.backups.s3.enabled = true;
    settings.backups.s3.bucket = bucket;
    settings.backups.s3.endpoint = $os.getenv("PB_BACKUP_S3_ENDPOINT");
    settings.backups.s3.region = $os.getenv("PB_BACKUP_S3_REGION");
    settings.backups.s3.accessKey = $os.getenv("PB_BACKUP_S3_ACCESS_KEY");
    settings.backups.s3.secret = $os.getenv("PB_BACKUP_S3_SECRET");
  }
  app.save(settings);
}, () => {
  // Backups stay configured on rollback: losing them silently would be worse.
});
