/** Media for campaigns: what other modules use of it. */
export { MediaService, cleanFileName, mediaView, type CampaignMedia, type CampaignMediaInput, type MediaContent, type MediaServiceOptions, type MediaView, type UploadInput } from './service.js';
export { mediaPath } from './store.js';
export type { MediaKind } from '../../store/sql/media.js';
