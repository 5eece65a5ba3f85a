/**
 * How to sign in here with a passkey on a phone or tablet (a hybrid sign-in by QR code), as /signin and "Can't use
 * your passkey?" both explain it.
 */
export function AnotherDeviceSteps() {
  return (
    <>
      <ol class="steps">
        <li>Enter your email address and select Continue. A pop-up will ask you to sign in with your passkey.</li>
        <li>Select "Use a different phone or tablet" or similar.</li>
        <li>Scan the QR code using the device that has your passkey. Bluetooth must be on.</li>
        <li>Follow the instructions on your device to finish signing in.</li>
      </ol>
      <p>On iPhone or iPad, make sure "Password AutoFill" and "Passkey AutoFill" are turned on in your device settings.</p>
    </>
  );
}
