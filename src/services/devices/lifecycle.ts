/** What the device service asks of linking when a device is deleted or changes transport. */

export interface DeviceLifecycle {
  /** Before a delete: log the device out and forget its auth (its message history stays). */
  deleting(deviceId: number): Promise<void>;
  /** After a change of transport: the old account means nothing to the new transport. */
  transportChanged(deviceId: number, transport: string): Promise<void>;
}
