export function Settings() {
  return (
    <section>
      <h1>Settings</h1>
    </section>
  );
}
