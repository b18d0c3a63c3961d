//! A push button and an LED on the Raspberry Pi's GPIO header (rppal): the button starts and
//! stops capture sessions, the LED lights while a known person is in view.
//!
//! The button is read by polling (the console's event loop ticks every 100 ms anyway) with a
//! debounce: a press is reported once when the pin has been held active for
//! [`GpioConfig::debounce`]. Off a Raspberry Pi [`GpioPanel::open`] fails with the reason; the
//! caller carries on without it.

use std::time::{Duration, Instant};

/// Pins and timing. Pin numbers are BCM GPIO numbers (not header positions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpioConfig {
    /// Push button to ground, with the internal pull-up (default GPIO 17, header pin 11).
    pub button_pin: u8,
    /// LED through a resistor to ground (default GPIO 27, header pin 13).
    pub led_pin: u8,
    /// How long the button must stay pressed to count (default 30 ms).
    pub debounce: Duration,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            button_pin: 17,
            led_pin: 27,
            debounce: Duration::from_millis(30),
        }
    }
}

/// Why the GPIO panel is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// Not a Raspberry Pi, no /dev/gpiomem access, or a pin is busy.
    #[error("GPIO unavailable (button GPIO {button}, LED GPIO {led}): {reason}")]
    Unavailable {
        /// The button's GPIO (BCM number).
        button: u8,
        /// The LED's GPIO (BCM number).
        led: u8,
        /// Why (not a Pi, no permission, pin busy...).
        reason: String,
    },
    /// The same pin for both.
    #[error("the button and the LED cannot share GPIO {0}")]
    SamePin(u8),
}

/// Debounced "was it pressed" over raw pin readings; separate from the pins so it is testable.
#[derive(Clone, Debug)]
pub struct ButtonDebouncer {
    debounce: Duration,
    active_since: Option<Instant>,
    reported: bool,
}

impl ButtonDebouncer {
    /// A debouncer that ignores changes within `debounce` of the last accepted one.
    pub fn new(debounce: Duration) -> ButtonDebouncer {
        ButtonDebouncer {
            debounce,
            active_since: None,
            reported: false,
        }
    }

    /// Feed a reading taken at `now`; true once per press, when it has lasted the debounce time.
    pub fn update(&mut self, pressed: bool, now: Instant) -> bool {
        if !pressed {
            self.active_since = None;
            self.reported = false;
            return false;
        }
        let since = *self.active_since.get_or_insert(now);
        if !self.reported && now.duration_since(since) >= self.debounce {
            self.reported = true;
            return true;
        }
        false
    }
}

/// The opened button and LED.
pub struct GpioPanel {
    button: rppal::gpio::InputPin,
    led: rppal::gpio::OutputPin,
    debouncer: ButtonDebouncer,
    config: GpioConfig,
}

impl GpioPanel {
    /// Open the pins (button input with pull-up, LED output, off).
    pub fn open(config: &GpioConfig) -> Result<GpioPanel, GpioError> {
        if config.button_pin == config.led_pin {
            return Err(GpioError::SamePin(config.button_pin));
        }
        let unavailable = |reason: String| GpioError::Unavailable {
            button: config.button_pin,
            led: config.led_pin,
            reason,
        };
        let gpio = rppal::gpio::Gpio::new().map_err(|e| unavailable(e.to_string()))?;
        let button = gpio
            .get(config.button_pin)
            .map_err(|e| unavailable(format!("button pin: {e}")))?
            .into_input_pullup();
        let led = gpio
            .get(config.led_pin)
            .map_err(|e| unavailable(format!("LED pin: {e}")))?
            .into_output_low();
        tracing::info!(
            button = config.button_pin,
            led = config.led_pin,
            "GPIO button and LED ready"
        );
        Ok(GpioPanel {
            button,
            led,
            debouncer: ButtonDebouncer::new(config.debounce),
            config: config.clone(),
        })
    }

    /// Whether the button was pressed since the last call (debounced; pressed = pulled low).
    pub fn button_pressed(&mut self) -> bool {
        let pressed = self.button.is_low();
        self.debouncer.update(pressed, Instant::now())
    }

    /// Light or darken the LED.
    pub fn set_led(&mut self, on: bool) {
        if on {
            self.led.set_high();
        } else {
            self.led.set_low();
        }
    }

    /// The pins in use.
    pub fn config(&self) -> &GpioConfig {
        &self.config
    }
}

impl Drop for GpioPanel {
    fn drop(&mut self) {
        // Leave the LED dark when the console exits.
        self.led.set_low();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_is_reported_once_after_the_debounce_time() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = ButtonDebouncer::new(Duration::from_millis(30));
        assert!(!d.update(true, ms(0)));
        assert!(!d.update(true, ms(20)), "bounce: too short");
        assert!(d.update(true, ms(35)));
        assert!(!d.update(true, ms(200)), "held: reported once");
        assert!(!d.update(false, ms(210)));
        assert!(!d.update(true, ms(220)));
        assert!(d.update(true, ms(260)), "a second press");
    }

    #[test]
    fn glitches_shorter_than_the_debounce_are_ignored() {
        let t0 = Instant::now();
        let mut d = ButtonDebouncer::new(Duration::from_millis(30));
        for i in 0..10 {
            let now = t0 + Duration::from_millis(i * 10);
            assert!(!d.update(i % 2 == 0, now));
        }
    }

    #[test]
    fn off_a_pi_opening_says_why() {
        if std::path::Path::new("/dev/gpiomem").exists() {
            eprintln!("skipped: this machine has GPIO");
            return;
        }
        let err = match GpioPanel::open(&GpioConfig::default()) {
            Ok(_) => panic!("GPIO opened on a machine without /dev/gpiomem"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("GPIO unavailable"), "{err}");
        assert!(err.contains("GPIO 17"), "{err}");
        let same = GpioConfig {
            led_pin: 17,
            ..GpioConfig::default()
        };
        assert!(matches!(
            GpioPanel::open(&same),
            Err(GpioError::SamePin(17))
        ));
    }
}
