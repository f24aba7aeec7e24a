/// <reference path="../pb_data/types.d.ts" />
// The platform's settings, applied from the environment at every start (C7, #13.1): a changed cron,
// retention, bucket or rotated S3 key reaches a database that already exists. (A migration runs once
// per database, so the settings of the first deployment used to stay for good.)
// onBootstrap: "triggered when initializing the main application resources (db, app settings,
// etc.)"; after e.next() the settings are loaded and can be saved (pocketbase.io/docs/js-event-hooks).
onBootstrap((e) => {
  e.next();
  const settings = e.app.settings();
  settings.backups.cron = $os.getenv("PB_BACKUP_CRON") || "0 3 * * *";
  settings.backups.cronMaxKeep = parseInt($os.getenv("PB_BACKUP_MAX_KEEP") || "7", 10);
  const bucket = $os.getenv("PB_BACKUP_S3_BUCKET");
  // Without a bucket the backups stay on the volume (the docker backend): S3 is switched off, so a
  // bucket removed from the stack stops receiving backups instead of keeping stale credentials.
  settings.backups.s3.enabled = !!bucket;
  settings.backups.s3.bucket = bucket || "";
  settings.backups.s3.endpoint = bucket ? $os.getenv("PB_BACKUP_S3_ENDPOINT") : "";
  settings.backups.s3.region = bucket ? $os.getenv("PB_BACKUP_S3_REGION") : "";
  settings.backups.s3.accessKey = bucket ? $os.getenv("PB_BACKUP_S3_ACCESS_KEY") : "";
  settings.backups.s3.secret = bucket ? $os.getenv("PB_BACKUP_S3_SECRET") : "";
  // Path-style addressing: what S3-compatible servers other than AWS expect (GCS's XML API takes both).
  settings.backups.s3.forcePathStyle = $os.getenv("PB_BACKUP_S3_FORCE_PATH_STYLE") === "true";
  e.app.save(settings);
});
