export async function simulateCommand(_args: string[]): Promise<number> {
  return 2;
}
