//! Geography shared by the detectors and the simulator: the great-circle distance between two places.
//!
//! In: latitudes and longitudes in degrees. Out: kilometres. State: none.

/// Mean radius of the Earth, km.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance in km (haversine formula).
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn london_to_new_york_is_about_5570_km() {
        let d = haversine_km(51.5074, -0.1278, 40.7128, -74.0060);
        assert!((5560.0..5580.0).contains(&d), "{d}");
        assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
    }
}
